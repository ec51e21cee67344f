import PhotoSorterCore
import PhotoSorterTestSupport
import XCTest

final class IdentityResolverTests: XCTestCase {
    private let fixture = EmbeddingFixture.shared

    private func unit(_ hot: Int, _ noise: [Int: Float] = [:]) throws -> Embedding {
        var values = [Float](repeating: 0, count: 128)
        values[hot] = 1
        for (index, value) in noise { values[index] = value }
        return try Embedding(normalising: values)
    }

    /// Runs photos through resolver + index the way the service does, returning person ids per face.
    private func sortOnline(_ photos: [EmbeddingFixture.Photo], policy: IdentityPolicy = IdentityPolicy()) -> [[Int64]] {
        var index = IdentityIndex()
        var nextPerson: Int64 = 1
        let resolver = IdentityResolver(policy: policy)
        return photos.map { photo in
            let faces = photo.faces.map(\.embedding)
            var newPersons: [Int: Int64] = [:]
            let ids = resolver.resolve(faces, against: index).map { identity -> Int64 in
                switch identity {
                case .existing(let person, _): return person
                case .new(let slot):
                    if let id = newPersons[slot] { return id }
                    defer { nextPerson += 1 }
                    newPersons[slot] = nextPerson
                    return nextPerson
                }
            }
            for (face, id) in zip(faces, ids) { index.add(face, to: id) }
            return ids
        }
    }

    func testFirstFaceOfANewPersonStartsANewPerson() throws {
        XCTAssertEqual(IdentityResolver().resolve([try unit(0)], against: IdentityIndex()), [.new(slot: 0)])
    }

    func testFaceJoinsThePersonItMatchesAboveThreshold() throws {
        var index = IdentityIndex()
        index.add(try unit(0), to: 7)
        index.add(try unit(0, [1: 0.1]), to: 7)
        let result = IdentityResolver().resolve([try unit(0, [2: 0.05])], against: index)
        guard case .existing(let person, let similarity) = result[0] else { return XCTFail("expected a match, got \(result)") }
        XCTAssertEqual(person, 7)
        XCTAssertGreaterThan(similarity, 0.99)
    }

    func testTwoFacesInOnePhotoAreNeverTheSamePersonTheBetterMatchWins() throws {
        var index = IdentityIndex()
        index.add(try unit(0), to: 1)
        // Both faces resemble person 1; the second is the closer one and keeps it, the other becomes new.
        let weaker = try unit(0, [3: 0.3])
        let stronger = try unit(0, [3: 0.1])
        let result = IdentityResolver(policy: IdentityPolicy(matchThreshold: 0.9, smallPersonMargin: 0))
            .resolve([weaker, stronger], against: index)
        XCTAssertEqual(result[1], .existing(person: 1, similarity: stronger.similarity(to: try unit(0))))
        XCTAssertEqual(result[0], .new(slot: 0))
    }

    func testLoserOfTheSamePhotoRuleFallsToItsNextBestPerson() throws {
        var index = IdentityIndex()
        index.add(try unit(0), to: 1)
        index.add(try unit(0, [5: 0.45]), to: 2)
        let a = try unit(0, [5: 0.2, 7: 0.1])  // close to both, slightly closer to 1
        let b = try unit(0, [6: 0.05])         // closest to 1
        let result = IdentityResolver(policy: IdentityPolicy(matchThreshold: 0.9, smallPersonMargin: 0)).resolve([a, b], against: index)
        guard case .existing(1, _) = result[1], case .existing(2, _) = result[0] else { return XCTFail("got \(result)") }
    }

    func testMirrorPairInOnePhotoResolvesToOnePerson() throws {
        let face = try unit(4, [9: 0.2])
        let mirror = try unit(4, [9: 0.21])
        let other = try unit(50)
        let result = IdentityResolver().resolve([face, other, mirror], against: IdentityIndex())
        XCTAssertEqual(result, [.new(slot: 0), .new(slot: 1), .new(slot: 0)])
    }

    func testSmallPersonsNeedAHigherSimilarity() {
        let policy = IdentityPolicy(matchThreshold: 0.92, smallPersonMargin: 0.01)
        XCTAssertEqual(policy.threshold(forPersonOfSize: 1), 0.93, accuracy: 1e-6)
        XCTAssertEqual(policy.threshold(forPersonOfSize: 4), 0.925, accuracy: 1e-6)
    }

    func testLFWIdentitiesAreSeparatedWithHighPairwisePrecisionOnRealEmbeddings() throws {
        let photos = fixture.photos(inSet: "lfw_small").filter { !$0.faces.isEmpty }
        XCTAssertGreaterThan(photos.count, 560)
        for order in 0..<3 {
            var generator = SeededGenerator(seed: UInt64(order + 1))
            let shuffled = order == 0 ? photos : photos.shuffled(using: &generator)
            let ids = sortOnline(shuffled)
            let items = zip(shuffled, ids).map { photo, ids in
                (label: photo.identity!, cluster: ids[EmbeddingFixture.centralFace(of: photo, imageSize: (250, 250))!])
            }
            let scores = ClusteringScores(items: items)
            print("lfw_small order \(order): pairwise P \(scores.pairwisePrecision) R \(scores.pairwiseRecall) BCubed F1 \(scores.bcubedF1)")
            XCTAssertGreaterThanOrEqual(scores.pairwisePrecision, 0.93)
            XCTAssertGreaterThanOrEqual(scores.bcubedF1, 0.92)
        }
    }

    func testFaceRecognitionExamplePeopleAreNeverMerged() throws {
        let photos = fixture.photos(inSet: "face_recognition_examples")
        let ids = sortOnline(photos)
        var labelsByPerson: [Int64: Set<String>] = [:]
        for (photo, faces) in zip(photos, ids) where photo.identity != nil && faces.count == 1 {
            labelsByPerson[faces[0], default: []].insert(photo.identity!)
        }
        XCTAssertTrue(labelsByPerson.values.allSatisfy { $0.count == 1 }, "merged: \(labelsByPerson)")
        let obama = Set(zip(photos, ids).filter { $0.0.identity == "obama" && $0.1.count == 1 }.map { $0.1[0] })
        XCTAssertEqual(obama.count, 1, "every single-face obama photo gets one id")
    }

    /// A face that matches a look kept from a merge joins the look's person and reports that look (where the
    /// service stores it), and the same-photo rule counts persons, not looks: a second face of the photo near the
    /// person's other look cannot join it too.
    func testAFaceJoinsThePersonOfTheLookItMatchesAndTwoLooksOfOnePersonAreStillOnePerson() throws {
        var index = IdentityIndex()
        index.add(try unit(0), to: 1)
        index.add(try unit(1), to: 2)
        index.move(try unit(1), from: (2, nil), to: (1, 2))
        let resolver = IdentityResolver(policy: IdentityPolicy(matchThreshold: 0.9, smallPersonMargin: 0))
        let one = resolver.resolveWithRunnerUps([try unit(1, [5: 0.1])], against: index)[0]
        XCTAssertEqual(one.identity, .existing(person: 1, similarity: try unit(1, [5: 0.1]).similarity(to: try unit(1))))
        XCTAssertEqual(one.look, 2)
        let two = resolver.resolveWithRunnerUps([try unit(1, [5: 0.1]), try unit(0, [5: 0.2])], against: index)
        XCTAssertEqual(two.map(\.identity), [.existing(person: 1, similarity: try unit(1, [5: 0.1]).similarity(to: try unit(1))), .new(slot: 0)])
        XCTAssertEqual(two.map(\.look), [2, nil])
    }
}

/// SplitMix64: reproducible shuffles for order-dependence tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

}
