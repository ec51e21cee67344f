import PhotoSorterCore
import PhotoSorterTestSupport
import XCTest

final class ReclusteringTests: XCTestCase {
    private let policy = IdentityPolicy(matchThreshold: 0.9, smallPersonMargin: 0)

    /// A unit vector mostly along axis `hot`, tilted by `tilt` towards axis 100 (same person, slightly different face).
    private func unit(_ hot: Int, tilt: Float = 0) throws -> Embedding {
        var values = [Float](repeating: 0, count: 128)
        values[hot] = 1
        values[100] = tilt
        return try Embedding(normalising: values)
    }

    /// A face and its vector, as the tests build them.
    private typealias StoredFace = (face: Reclustering.Face, vector: Embedding)

    private func face(_ id: Int64, photo: Int64, _ embedding: Embedding, person: Int64, confirmed: Bool = false,
                      rejected: Set<Int64> = []) -> StoredFace {
        (Reclustering.Face(id: id, photo: photo, person: person, confirmed: confirmed, rejected: rejected), embedding)
    }

    private func run(_ faces: [StoredFace], policy: IdentityPolicy, retired: Set<Int64> = []) async throws -> Reclustering.Outcome {
        try await Reclustering.run(faces.map(\.face), vectors: faces.map(\.vector), policy: policy, retired: retired)
    }

    private func persons(_ outcome: Reclustering.Outcome) -> [Reclustering.Person?] { outcome.assignments.map(\.person) }

    /// The faces as the service stores an outcome: new persons get fresh ids, rejections of merged ids move to the
    /// person that absorbed them.
    private func applied(_ outcome: Reclustering.Outcome, to faces: [StoredFace], newIDsFrom base: Int64 = 2_000_000) -> [StoredFace] {
        func id(_ person: Reclustering.Person) -> Int64 {
            switch person {
            case .existing(let id): id
            case .new(let n): base + Int64(n)
            }
        }
        let absorbedBy = Dictionary(uniqueKeysWithValues: outcome.merged.map { ($0.from, id($0.into)) })
        return zip(faces, outcome.assignments).map { stored, assignment in
            let face = stored.face
            return (Reclustering.Face(id: face.id, photo: face.photo, person: assignment.person.map(id),
                                      confirmed: face.confirmed, rejected: Set(face.rejected.map { absorbedBy[$0] ?? $0 }),
                                      look: assignment.look, mayFoundPerson: face.mayFoundPerson), stored.vector)
        }
    }

    func testUnconstrainedLibraryKeepsEveryFaceAndID() async throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(1), person: 8),
            face(3, photo: 2, try unit(0, tilt: 0.1), person: 7),
            face(4, photo: 3, try unit(1, tilt: 0.1), person: 8),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(7), .existing(8), .existing(7), .existing(8)])
        XCTAssertEqual(outcome.newPersonCount, 0)
        XCTAssertTrue(outcome.merged.isEmpty)
    }

    func testConfirmedFacesStayWithTheirPersonEvenWhenTheRuleWouldMoveThem() async throws {
        // Face 2 looks like person 7 but a user put it in person 9.
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.05), person: 9, confirmed: true),
            face(3, photo: 3, try unit(0, tilt: 0.1), person: 7),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[1].person, .existing(9))
        XCTAssertNil(outcome.assignments[1].similarity, "a confirmed face was not placed by the rule")
        // The seed of person 9 is in the index from the start: the first face joins it rather than starting 7.
        XCTAssertEqual(outcome.assignments[0].person, .existing(9))
        XCTAssertTrue(outcome.merged.contains { $0.from == 7 && $0.into == .existing(9) }, "person 7 left without a cluster is a recorded merge")
    }

    func testRejectedPersonIsNeverJoinedNorGivenToTheFacesCluster() async throws {
        // Face 2 was marked "not person 7": it must neither join 7's cluster nor take id 7 for its own.
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.05), person: 8, rejected: [7]),
            face(3, photo: 3, try unit(0, tilt: 0.05), person: 8),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[0].person, .existing(7))
        XCTAssertNotEqual(outcome.assignments[1].person, .existing(7))
        XCTAssertEqual(outcome.assignments[1].person, .existing(8))
        XCTAssertEqual(outcome.assignments[1].runnerUp, nil, "the rejected person is no runner-up either")
    }

    func testFacesOfOnePhotoNeverShareAPersonWithAConfirmedFaceOfThatPhoto() async throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7, confirmed: true),
            face(2, photo: 2, try unit(0, tilt: 0.02), person: 7, confirmed: true),
            face(3, photo: 2, try unit(0, tilt: 0.04), person: 8),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[2].person, .existing(8))
        XCTAssertEqual(outcome.assignments[2].runnerUp, nil)
    }

    func testRetiredIDsAreNeverGivenOutAgainAndLeftoversAreNewPersons() async throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 5),
            face(2, photo: 2, try unit(1), person: 5),
        ]
        // Two different people under one id: the bigger share keeps 5 (tie: the earlier cluster), the other is new.
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(5), .new(0)])
        XCTAssertEqual(outcome.newPersonCount, 1)
        let retired = try await run(faces, policy: policy, retired: [5])
        XCTAssertEqual(persons(retired), [.new(0), .new(1)])
    }

    func testEachClusterKeepsTheOldIDItSharesTheMostFacesWithAndEachIDIsUsedOnce() {
        // Old person 7 had faces 1, 2, 3; person 8 faces 4, 5. Cluster 0 = {1, 2}, cluster 1 = {3, 4, 5}, cluster 2 = {6} (new).
        let kept = Reclustering.keepIDs(clusterFaces: [[1, 2], [3, 4, 5], [6]], oldPersonOfFace: [1: 7, 2: 7, 3: 7, 4: 8, 5: 8])
        XCTAssertEqual(kept, [0: 7, 1: 8])
    }

    func testTiesGoToTheLowerOldIDThenTheEarlierClusterAndForbiddenIDsAreSkipped() {
        let kept = Reclustering.keepIDs(clusterFaces: [[1], [2]], oldPersonOfFace: [1: 4, 2: 4])
        XCTAssertEqual(kept, [0: 4], "person 4 is taken by cluster 0; cluster 1 shares no other old person")
        let forbidden = Reclustering.keepIDs(clusterFaces: [[1], [2]], oldPersonOfFace: [1: 4, 2: 4], forbidden: [0: [4]])
        XCTAssertEqual(forbidden, [1: 4])
    }

    func testRunnerUpIsTheNearestPersonTheFaceDidNotJoin() async throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.3), person: 7),
        ]
        let outcome = try await run(faces, policy: IdentityPolicy(matchThreshold: 0.97, smallPersonMargin: 0))
        // cos = 1/sqrt(1.09) ≈ 0.958: below 0.97, within the review window: a new person with 7 as runner-up.
        XCTAssertEqual(outcome.assignments[1].person, .new(0))
        XCTAssertEqual(outcome.assignments[1].runnerUp, .existing(7))
        XCTAssertEqual(try XCTUnwrap(outcome.assignments[1].runnerUpSimilarity), 0.958, accuracy: 0.001)
    }

    /// On real dlib embeddings of lfw_small: a re-cluster of an online-sorted library changes nothing, and applying a
    /// re-cluster and running it again changes nothing either (a fixed point), with corrections in place.
    func testRunningTwiceChangesNothingOnRealEmbeddings() async throws {
        let photos = EmbeddingFixture.shared.photos(inSet: "lfw_small")
        let policy = FaceModel.dlib.policy
        // Faces nobody placed yet: the replay is the online rule, photo by photo.
        var unplaced: [StoredFace] = []
        for (photo, fixturePhoto) in photos.enumerated() {
            for face in fixturePhoto.faces {
                unplaced.append((Reclustering.Face(id: Int64(unplaced.count + 1), photo: Int64(photo), person: nil), face.embedding))
            }
        }
        let online = try await run(unplaced, policy: policy)
        XCTAssertEqual(online.newPersonCount, Set(online.assignments.map(\.person)).count)
        XCTAssertTrue(online.merged.isEmpty)
        var faces = applied(online, to: unplaced, newIDsFrom: 1000)
        let first = try await run(faces, policy: policy)
        XCTAssertEqual(first.assignments.map(\.person), faces.map { .existing($0.face.person!) })

        // Corrections: confirm face 5 into face 1's person, reject face 10's person for it.
        faces[4].face = Reclustering.Face(id: faces[4].face.id, photo: faces[4].face.photo, person: faces[0].face.person, confirmed: true)
        faces[9].face = Reclustering.Face(id: faces[9].face.id, photo: faces[9].face.photo, person: faces[9].face.person,
                                          confirmed: false, rejected: [faces[9].face.person!])
        let corrected = try await run(faces, policy: policy)
        XCTAssertEqual(corrected.assignments[4].person, .existing(faces[0].face.person!))
        XCTAssertNotEqual(corrected.assignments[9].person, .existing(faces[9].face.person!))
        let again = try await run(applied(corrected, to: faces), policy: policy, retired: Set(corrected.merged.map(\.from)))
        let changed = zip(applied(corrected, to: faces), again.assignments).filter { $0.1.person != .existing($0.0.face.person!) }
        XCTAssertEqual(changed.count, 0, "faces moved by a second run: \(changed.map(\.0.face.id))")
        XCTAssertEqual(again.newPersonCount, 0)
        XCTAssertTrue(again.merged.isEmpty)
    }

    /// A merge's parts stay side by side: the confirmed faces of a person's own look and of a look kept from a merge
    /// seed one look each, and a face that matches only the merged-in look joins the person there (a blend of both
    /// looks would be too far from it).
    func testConfirmedLooksOfAMergeSeedOneLookEachAndAFaceNearOneJoinsThePersonThere() async throws {
        let faces: [StoredFace] = [
            (Reclustering.Face(id: 1, photo: 1, person: 10, confirmed: true), try unit(0)),
            (Reclustering.Face(id: 2, photo: 2, person: 10, confirmed: true), try unit(0, tilt: 0.1)),
            (Reclustering.Face(id: 3, photo: 3, person: 10, confirmed: true, look: 11), try unit(1)),
            (Reclustering.Face(id: 4, photo: 4, person: 10, confirmed: true, look: 11), try unit(1, tilt: 0.1)),
            face(5, photo: 5, try unit(1, tilt: 0.2), person: 12),
            face(6, photo: 6, try unit(2), person: 13),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(10), .existing(10), .existing(10), .existing(10), .existing(10), .existing(13)])
        XCTAssertEqual(outcome.assignments.map(\.look), [nil, nil, 11, 11, 11, nil])
        XCTAssertEqual(outcome.merged.map(\.from), [12])

        let blended = try await run(faces.map { (Reclustering.Face(id: $0.face.id, photo: $0.face.photo, person: $0.face.person,
                                                                   confirmed: $0.face.confirmed), $0.vector) }, policy: policy)
        XCTAssertEqual(blended.assignments[4].person, .existing(12), "one blended mean of both looks does not take the face")
    }

    /// An unsure face joins a person it matches but starts none: alone it stays unsorted, and a face that may found
    /// a person still does so in the same replay.
    func testAnUnsureFaceJoinsAPersonItMatchesButStartsNone() async throws {
        let faces: [StoredFace] = [
            face(1, photo: 1, try unit(0), person: 10),
            (Reclustering.Face(id: 2, photo: 2, person: nil, mayFoundPerson: false), try unit(0, tilt: 0.1)),
            (Reclustering.Face(id: 3, photo: 3, person: 11, mayFoundPerson: false), try unit(1)),
            (Reclustering.Face(id: 4, photo: 4, person: nil), try unit(2)),
        ]
        let outcome = try await run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(10), .existing(10), nil, .new(0)])
        XCTAssertEqual(outcome.newPersonCount, 1)
        XCTAssertTrue(outcome.merged.isEmpty, "a person whose only face became unsorted is not merged into anyone")
        let again = try await run(applied(outcome, to: faces), policy: policy)
        XCTAssertEqual(persons(again), [.existing(10), .existing(10), nil, .existing(2_000_000)], "a second run changes nothing")
    }

    /// Vectors by position, recording every request.
    private final class RecordingVectors: FaceVectors, @unchecked Sendable {
        let vectors: [Embedding]
        private(set) var requests: [[Int]] = []
        init(_ vectors: [Embedding]) { self.vectors = vectors }

        func vectors(at positions: [Int]) async throws -> [Embedding] {
            requests.append(positions)
            return positions.map { vectors[$0] }
        }
    }

    /// A re-cluster of a large library does not hold every vector: each pass reads them in ascending chunks of at most
    /// `vectorChunk` positions (confirmed faces first), a photo spanning two chunks included, with the outcome of the
    /// vectors held in memory.
    func testVectorsAreStreamedInAscendingChunksWithTheSameOutcome() async throws {
        let photos = EmbeddingFixture.shared.photos(inSet: "lfw_small")
        var library: [(photo: Int64, vector: Embedding)] = []
        // Copies of the set (each a library of its own people), so the replay crosses a chunk boundary.
        for copy in 0..<4 {
            for (photo, fixturePhoto) in photos.enumerated() {
                for face in fixturePhoto.faces { library.append((Int64(copy * 10_000 + photo), face.embedding)) }
            }
        }
        // One-face photos in front, so that a photo of several faces spans the first boundary.
        let boundary = Reclustering.vectorChunk
        let padding = try XCTUnwrap((0..<boundary).first { library[boundary - 1 - $0].photo == library[boundary - $0].photo })
        library = (0..<padding).map { (Int64(-1 - $0), library[$0].vector) } + library
        var faces: [StoredFace] = []
        for (photo, vector) in library {
            let person: Int64? = faces.count % 97 == 0 ? 1 : nil
            faces.append((Reclustering.Face(id: Int64(faces.count + 1), photo: photo, person: person, confirmed: person != nil,
                                            rejected: faces.count % 89 == 1 ? [1] : []), vector))
        }
        XCTAssertEqual(faces[boundary - 1].face.photo, faces[boundary].face.photo)
        let policy = FaceModel.dlib.policy
        let held = try await run(faces, policy: policy)
        let recording = RecordingVectors(faces.map(\.vector))
        let streamed = try await Reclustering.run(faces.map(\.face), vectors: recording, policy: policy)
        XCTAssertEqual(streamed.assignments, held.assignments)
        XCTAssertEqual(streamed.newPersonCount, held.newPersonCount)

        let confirmed = faces.indices.filter { faces[$0].face.confirmed }
        var expected: [Int] = []
        var passes = 0
        for request in recording.requests {
            XCTAssertLessThanOrEqual(request.count, Reclustering.vectorChunk)
            if request == confirmed {
                XCTAssertEqual(expected.count, 0, "pass \(passes) read every face before the next pass began")
                expected = Array(faces.indices)
                passes += 1
                continue
            }
            XCTAssertEqual(request, Array(expected.prefix(request.count)), "a pass reads the positions in order, each once")
            expected.removeFirst(request.count)
        }
        XCTAssertEqual(expected.count, 0)
        XCTAssertGreaterThanOrEqual(passes, 2, "rejections make the replay run a second pass")
    }
}
