import Foundation
@testable import PhotoSorterCore
import PhotoSorterTestSupport
import XCTest

/// `IdentityIndex` (a 4-bit first pass, then exact re-checks) against a naive exact reference: the same
/// candidates in the same order with the same similarities, through additions and removals.
final class IdentityIndexTests: XCTestCase {
    /// What a straightforward index keeps: per person the float32 sum of their faces and the face count.
    private struct ReferenceIndex {
        var sums: [Int64: [Float]] = [:]
        var counts: [Int64: Int] = [:]

        mutating func add(_ face: Embedding, to person: Int64) {
            var sum = sums[person] ?? [Float](repeating: 0, count: face.dimension)
            for i in sum.indices { sum[i] += face.values[i] }
            sums[person] = sum
            counts[person, default: 0] += 1
        }

        mutating func remove(_ face: Embedding, from person: Int64) {
            guard let count = counts[person] else { return }
            if count == 1 {
                sums[person] = nil
                counts[person] = nil
            } else {
                for i in face.values.indices { sums[person]![i] -= face.values[i] }
                counts[person] = count - 1
            }
        }

        /// Every person's mean similarity `q · sum / count`, the dot summed in double precision one term at a time.
        func scores(_ face: Embedding) -> [Int64: Float] {
            sums.reduce(into: [:]) { scores, entry in
                var dot = 0.0
                for i in entry.value.indices { dot += Double(face.values[i]) * Double(entry.value[i]) }
                scores[entry.key] = Float(dot / Double(counts[entry.key]!))
            }
        }

        /// The exact rule, person by person; best first, equal similarities by ascending id.
        func candidates(scores: [Int64: Float], policy: IdentityPolicy) -> [Candidate] {
            scores.filter { $0.value >= policy.threshold(forPersonOfSize: counts[$0.key]!) }
                .map { Candidate(person: $0.key, similarity: $0.value) }
                .sorted { ($0.similarity, $1.person) > ($1.similarity, $0.person) }
        }
    }

    private struct Candidate: Equatable, CustomStringConvertible {
        let person: Int64
        let similarity: Float
        var description: String { "\(person): \(similarity)" }
    }

    private struct Face {
        let person: Int64
        let embedding: Embedding
    }

    private var generator = SeededGenerator(seed: 2024)

    private func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &generator), u2 = Double.random(in: 0..<1, using: &generator)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    /// `centre` plus Gaussian noise of `spread` per unit of length, normalised.
    private func near(_ centre: [Float], spread: Float) throws -> Embedding {
        let noise = spread / Float(centre.count).squareRoot()
        return try Embedding(normalising: centre.map { $0 + noise * gaussian() })
    }

    private func unitVector(_ dimension: Int) -> [Float] {
        let values = (0..<dimension).map { _ in gaussian() }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return values.map { $0 / norm }
    }

    private func indexCandidates(_ index: IdentityIndex, _ face: Embedding, _ policy: IdentityPolicy) -> [Candidate] {
        index.candidates(for: face, policy: policy).map { Candidate(person: $0.person, similarity: $0.similarity) }
    }

    /// Persons in families of look-alikes (so scores spread from unrelated to near-duplicates), 1–5 faces each.
    private func makePersons(dimension: Int, families: Int, personsPerFamily: Int, firstID: Int64) throws -> ([Face], [[Float]]) {
        var faces: [Face] = [], centres: [[Float]] = []
        var person = firstID
        for _ in 0..<families {
            let family = unitVector(dimension)
            for _ in 0..<personsPerFamily {
                let centre = try near(family, spread: Float.random(in: 0.5...1.2, using: &generator)).values
                centres.append(centre)
                let spread = Float.random(in: 0.3...0.9, using: &generator)
                for _ in 0..<Int.random(in: 1...5, using: &generator) {
                    faces.append(Face(person: person, embedding: try near(centre, spread: spread)))
                }
                person += 1
            }
        }
        return (faces.shuffled(using: &generator), centres)
    }

    /// Runs queries near known persons and at random; returns how many candidates and near misses
    /// (reference score within 0.15 below the threshold, so re-checked and rejected) were compared.
    private func compareQueries(_ index: IdentityIndex, _ reference: ReferenceIndex, centres: [[Float]],
                                         policies: [IdentityPolicy], count: Int) throws -> (candidates: Int, nearMisses: Int) {
        var candidates = 0, nearMisses = 0
        for query in 0..<count {
            let face = query % 5 == 0
                ? try Embedding(normalising: unitVector(centres[0].count))
                : try near(centres.randomElement(using: &generator)!, spread: Float.random(in: 0.1...1.6, using: &generator))
            let scores = reference.scores(face)
            for policy in policies {
                let expected = reference.candidates(scores: scores, policy: policy)
                XCTAssertEqual(indexCandidates(index, face, policy), expected, "query \(query), policy \(policy)")
                candidates += expected.count
                nearMisses += scores.filter { person, score in
                    let threshold = policy.threshold(forPersonOfSize: reference.counts[person]!)
                    return (threshold - 0.15..<threshold).contains(score)
                }.count
            }
        }
        return (candidates, nearMisses)
    }

    private func assertSameProfiles(_ index: IdentityIndex, _ reference: ReferenceIndex, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(index.personCount, reference.counts.count, file: file, line: line)
        XCTAssertEqual(index.personIDs, reference.counts.keys.sorted(), file: file, line: line)
        XCTAssertEqual(Set(index.lookIDs), Set(reference.counts.keys), file: file, line: line)
        for (person, count) in reference.counts {
            XCTAssertEqual(index.profile(of: person)?.count, count, "person \(person)", file: file, line: line)
            XCTAssertEqual(index.profile(of: person)?.sum, reference.sums[person], "person \(person)", file: file, line: line)
        }
    }

    private func checkAgainstReference(dimension: Int, policies: [IdentityPolicy]) throws {
        var index = IdentityIndex()
        var reference = ReferenceIndex()
        let (initialFaces, centres) = try makePersons(dimension: dimension, families: 40, personsPerFamily: 15, firstID: 1)
        var faces = initialFaces
        for face in faces {
            index.add(face.embedding, to: face.person)
            reference.add(face.embedding, to: face.person)
        }
        XCTAssertEqual(index.dimension, dimension)
        assertSameProfiles(index, reference)
        var totals = try compareQueries(index, reference, centres: centres, policies: policies, count: 60)

        // Remove a third of the faces: persons lose faces, and many lose all of them (rows swap-removed).
        for _ in 0..<faces.count / 3 {
            let face = faces.remove(at: Int.random(in: faces.indices, using: &generator))
            index.remove(face.embedding, from: face.person)
            reference.remove(face.embedding, from: face.person)
        }
        // Removing from an unknown person changes nothing.
        index.remove(faces[0].embedding, from: 1_000_000)
        assertSameProfiles(index, reference)
        var more = try compareQueries(index, reference, centres: centres, policies: policies, count: 60)
        totals.candidates += more.candidates
        totals.nearMisses += more.nearMisses

        // New persons take the freed rows' places at the end; old ones gain faces again.
        let (newFaces, newCentres) = try makePersons(dimension: dimension, families: 10, personsPerFamily: 10, firstID: 10_000)
        for face in newFaces + faces.prefix(50) {
            index.add(face.embedding, to: face.person)
            reference.add(face.embedding, to: face.person)
        }
        assertSameProfiles(index, reference)
        more = try compareQueries(index, reference, centres: centres + newCentres, policies: policies, count: 60)
        totals.candidates += more.candidates
        totals.nearMisses += more.nearMisses

        print("\(dimension)-d: \(index.personCount) persons, \(totals.candidates) candidates, \(totals.nearMisses) near misses compared")
        XCTAssertGreaterThan(totals.candidates, 100, "the queries should find candidates")
        XCTAssertGreaterThan(totals.nearMisses, 300, "the queries should come close to the threshold without reaching it")
    }

    func testCandidatesEqualTheExactReferenceAt512Dimensions() throws {
        // ArcFace-like thresholds, a flat one, and a negative small-person margin (the lowest threshold is then n = 1).
        try checkAgainstReference(dimension: 512, policies: [
            IdentityPolicy(matchThreshold: 0.42, smallPersonMargin: 0.05),
            IdentityPolicy(matchThreshold: 0.6, smallPersonMargin: 0),
            IdentityPolicy(matchThreshold: 0.5, smallPersonMargin: -0.1),
        ])
    }

    func testCandidatesEqualTheExactReferenceAt128Dimensions() throws {
        try checkAgainstReference(dimension: 128, policies: [
            IdentityPolicy(matchThreshold: 0.5, smallPersonMargin: 0.05),
            IdentityPolicy(matchThreshold: 0.75, smallPersonMargin: 0.01),
        ])
    }

    /// Real dlib embeddings are far from zero-mean (unrelated faces score 0.8 and more): the case where the
    /// 4-bit pass prunes least. Every fixture face, queried against persons built from the others.
    func testCandidatesEqualTheExactReferenceOnRealDlibEmbeddings() {
        let photos = EmbeddingFixture.shared.photos(inSet: "lfw_small").filter { !$0.faces.isEmpty }
        var index = IdentityIndex()
        var reference = ReferenceIndex()
        var labels: [String: Int64] = [:]
        for (number, photo) in photos.enumerated() where number % 2 == 0 {
            let person = labels[photo.identity!] ?? Int64(labels.count + 1)
            labels[photo.identity!] = person
            index.add(photo.faces[0].embedding, to: person)
            reference.add(photo.faces[0].embedding, to: person)
        }
        var candidates = 0
        for photo in photos {
            let scores = reference.scores(photo.faces[0].embedding)
            for policy in [IdentityPolicy(), IdentityPolicy(matchThreshold: 0.85, smallPersonMargin: 0.01)] {
                let expected = reference.candidates(scores: scores, policy: policy)
                XCTAssertEqual(indexCandidates(index, photo.faces[0].embedding, policy), expected, photo.path)
                candidates += expected.count
            }
        }
        XCTAssertGreaterThan(candidates, photos.count)
    }

    /// Enough persons for several storage blocks (1024 rows each): removals move rows between blocks and
    /// empty the last one.
    func testCandidatesEqualTheExactReferenceAcrossStorageBlocks() throws {
        var index = IdentityIndex()
        var reference = ReferenceIndex()
        var (faces, centres) = try makePersons(dimension: 128, families: 260, personsPerFamily: 10, firstID: 1)
        for face in faces {
            index.add(face.embedding, to: face.person)
            reference.add(face.embedding, to: face.person)
        }
        XCTAssertGreaterThan(index.personCount, 2048)
        let policies = [IdentityPolicy(matchThreshold: 0.5, smallPersonMargin: 0.05)]
        var totals = try compareQueries(index, reference, centres: centres, policies: policies, count: 20)
        // Most faces go: the index shrinks to under one block, then grows again.
        faces.shuffle(using: &generator)
        for face in faces.prefix(faces.count * 9 / 10) {
            index.remove(face.embedding, from: face.person)
            reference.remove(face.embedding, from: face.person)
        }
        XCTAssertLessThan(index.personCount, 1024)
        assertSameProfiles(index, reference)
        let more = try compareQueries(index, reference, centres: centres, policies: policies, count: 20)
        (faces, centres) = try makePersons(dimension: 128, families: 150, personsPerFamily: 10, firstID: 100_000)
        for face in faces {
            index.add(face.embedding, to: face.person)
            reference.add(face.embedding, to: face.person)
        }
        assertSameProfiles(index, reference)
        let last = try compareQueries(index, reference, centres: centres, policies: policies, count: 20)
        totals.candidates += more.candidates + last.candidates
        XCTAssertGreaterThan(totals.candidates, 20)
    }

    /// An index past `PersonRows.parallelScanMinimumBlocks` is scanned by several threads; its candidates, for one
    /// face or for the faces of a photo at once, are still exactly the reference's, in the same order.
    func testParallelAndMultiFaceScansOfALargeIndexEqualTheExactReference() throws {
        var index = IdentityIndex()
        var reference = ReferenceIndex()
        let (faces, centres) = try makePersons(dimension: 128, families: 1_650, personsPerFamily: 10, firstID: 1)
        for face in faces {
            index.add(face.embedding, to: face.person)
            reference.add(face.embedding, to: face.person)
        }
        XCTAssertGreaterThan(index.personCount, PersonRows.parallelScanMinimumBlocks * PersonRows.rowsPerBlock)
        let policy = IdentityPolicy(matchThreshold: 0.5, smallPersonMargin: 0.05)
        let totals = try compareQueries(index, reference, centres: centres, policies: [policy], count: 10)
        XCTAssertGreaterThan(totals.candidates, 5)
        let photo = try (0..<4).map { _ in try near(centres.randomElement(using: &generator)!, spread: 0.6) }
        let together = index.candidates(for: photo, policy: policy)
        XCTAssertEqual(together.count, photo.count)
        for (face, found) in zip(photo, together) {
            XCTAssertEqual(found.map { Candidate(person: $0.person, similarity: $0.similarity) },
                           reference.candidates(scores: reference.scores(face), policy: policy))
        }
    }

    /// An index built in bulk holds the same sums (to the bit) and finds the same candidates as one built face by
    /// face in the same order; a person's stored sum restores it.
    func testBulkBuiltIndexEqualsOneBuiltFaceByFace() throws {
        var index = IdentityIndex()
        var builder = IdentityIndex.Builder()
        let (faces, centres) = try makePersons(dimension: 512, families: 60, personsPerFamily: 10, firstID: 1)
        for face in faces {
            index.add(face.embedding, to: face.person)
            builder.add(face.embedding, to: face.person)
        }
        XCTAssertEqual(builder.faceCount, faces.count)
        let built = builder.build()
        XCTAssertEqual(built.personIDs, index.personIDs)
        for person in index.personIDs {
            XCTAssertEqual(built.profile(of: person)?.sum, index.profile(of: person)?.sum, "person \(person)")
            XCTAssertEqual(built.faceCount(of: person), index.faceCount(of: person))
        }
        var restoring = IdentityIndex.Builder(dimension: 512)
        for person in index.personIDs {
            let profile = index.profile(of: person)!
            restoring.add(sum: profile.sum, faceCount: profile.count, ofLook: person, person: person)
        }
        let restored = restoring.build()
        let policy = IdentityPolicy(matchThreshold: 0.3, smallPersonMargin: 0.05)
        for _ in 0..<20 {
            let face = try near(centres.randomElement(using: &generator)!, spread: 0.8)
            let expected = indexCandidates(index, face, policy)
            XCTAssertEqual(indexCandidates(built, face, policy), expected)
            XCTAssertEqual(indexCandidates(restored, face, policy), expected)
        }
        XCTAssertEqual(IdentityIndex.Builder(dimension: 512).build().personCount, 0)
    }

    func testEqualSimilaritiesAreOrderedByPersonID() throws {
        let face = try Embedding(normalising: (0..<512).map { Float($0 % 9) })
        var index = IdentityIndex()
        for person: Int64 in [9, 3, 7] { index.add(face, to: person) }
        let candidates = index.candidates(for: face, policy: IdentityPolicy())
        XCTAssertEqual(candidates.map(\.person), [3, 7, 9])
        XCTAssertEqual(Set(candidates.map(\.similarity)).count, 1)
    }

    func testTheFirstFaceFixesTheDimension() throws {
        var index = IdentityIndex()
        XCTAssertNil(index.dimension)
        XCTAssertTrue(index.candidates(for: try Embedding(normalising: [Float](repeating: 1, count: 512)), policy: IdentityPolicy()).isEmpty)
        index.add(try Embedding(normalising: [Float](repeating: 1, count: 128)), to: 1)
        XCTAssertEqual(index.dimension, 128)
        XCTAssertEqual(IdentityIndex(dimension: 512).dimension, 512)
        XCTAssertEqual(IdentityIndex(dimension: 512).personCount, 0)
    }

    func testACopyIsIndependentOfTheOriginal() throws {
        let (faces, _) = try makePersons(dimension: 512, families: 3, personsPerFamily: 4, firstID: 1)
        var original = IdentityIndex()
        for face in faces { original.add(face.embedding, to: face.person) }
        let profiles = Dictionary(uniqueKeysWithValues: original.personIDs.map { ($0, original.profile(of: $0)!.sum) })
        var copy = original
        for face in faces { copy.remove(face.embedding, from: face.person) }
        copy.add(faces[0].embedding, to: 99)
        XCTAssertEqual(copy.personIDs, [99])
        XCTAssertEqual(original.personIDs, profiles.keys.sorted())
        for (person, sum) in profiles { XCTAssertEqual(original.profile(of: person)?.sum, sum) }
    }

    // MARK: Looks

    /// Faces of person 1 near `a` in its own look and near `b` in look 2 (a person merged into it), as a merge leaves them.
    /// Returns the index and the faces of each look.
    private func twoLooks(_ a: [Float], _ b: [Float], faces: Int) throws -> (IdentityIndex, own: [Embedding], lookTwo: [Embedding]) {
        var index = IdentityIndex()
        var own: [Embedding] = [], lookTwo: [Embedding] = []
        for _ in 0..<faces {
            own.append(try near(a, spread: 0.5))
            index.add(own.last!, to: 1)
            lookTwo.append(try near(b, spread: 0.5))
            index.add(lookTwo.last!, to: 2)
        }
        for face in lookTwo { index.move(face, from: (2, nil), to: (1, 2)) }
        return (index, own, lookTwo)
    }

    func testAMergedPersonIsMatchedByItsBestLookNotByABlendOfItsLooks() throws {
        let (a, b) = (unitVector(512), unitVector(512))
        let (index, own, lookTwo) = try twoLooks(a, b, faces: 6)
        var blended = IdentityIndex()
        for face in own + lookTwo { blended.add(face, to: 1) }
        let policy = IdentityPolicy(matchThreshold: 0.5, smallPersonMargin: 0)
        let query = try near(b, spread: 0.5)
        let candidates = index.candidates(for: query, policy: policy)
        XCTAssertEqual(candidates.map(\.person), [1], "one person, through one look")
        XCTAssertEqual(candidates.first?.look, 2)
        XCTAssertEqual(candidates.first?.similarity ?? 0, index.profile(ofLook: 2)!.meanSimilarity(to: query), accuracy: 1e-6)
        XCTAssertTrue(blended.candidates(for: query, policy: policy).isEmpty, "the blended mean sits between the looks and matches neither")
        XCTAssertEqual(index.personIDs, [1])
        XCTAssertEqual(index.lookIDs, [1, 2])
        XCTAssertEqual(index.faceCount(of: 1), 12)
        XCTAssertEqual(index.faceCount(ofLook: 2), 6)
    }

    func testALookThatChangesPersonKeepsItsSumBitForBit() throws {
        var index = IdentityIndex()
        let faces = try (0..<5).map { _ in try near(unitVector(512), spread: 0.3) }
        for face in faces { index.add(face, to: 2) }
        let before = index.profile(ofLook: 2)!.sum
        for face in faces { index.move(face, from: (2, nil), to: (1, 2)) }
        XCTAssertEqual(index.profile(ofLook: 2)?.sum, before)
        XCTAssertEqual(index.owner(ofLook: 2), 1)
        XCTAssertEqual(index.looks(of: 1), [2])
        XCTAssertEqual(index.looks(of: 2), [], "the absorbed person has no look of its own left")

        var builder = IdentityIndex.Builder()
        for face in faces { builder.add(face, to: 1, look: 2) }
        let built = builder.build()
        XCTAssertEqual(built.profile(ofLook: 2)?.sum, before)
        XCTAssertEqual(built.owner(ofLook: 2), 1)
        XCTAssertEqual(built.candidates(for: faces[0], policy: IdentityPolicy(matchThreshold: 0.2)),
                       index.candidates(for: faces[0], policy: IdentityPolicy(matchThreshold: 0.2)))
    }

    func testALookLeftWithoutFacesLeavesItsPersonAndAPersonWithoutLooksLeavesTheIndex() throws {
        let (a, b) = (unitVector(512), unitVector(512))
        var (index, _, lookTwo) = try twoLooks(a, b, faces: 3)
        for face in lookTwo { index.remove(face, from: 1, look: 2) }
        XCTAssertEqual(index.looks(of: 1), [1])
        XCTAssertEqual(index.lookIDs, [1])
        XCTAssertEqual(index.owner(ofLook: 2), 2, "an unknown look is nobody else's")
        let face = try near(a, spread: 0)
        index.add(face, to: 5, look: 7)
        index.remove(face, from: 5, look: 7)
        XCTAssertEqual(index.personIDs, [1])
    }
}
