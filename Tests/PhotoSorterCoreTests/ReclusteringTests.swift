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

    private func face(_ id: Int64, photo: Int64, _ embedding: Embedding, person: Int64, confirmed: Bool = false,
                      rejected: Set<Int64> = []) -> Reclustering.Face {
        Reclustering.Face(id: id, photo: photo, embedding: embedding, person: person, confirmed: confirmed, rejected: rejected)
    }

    private func persons(_ outcome: Reclustering.Outcome) -> [Reclustering.Person?] { outcome.assignments.map(\.person) }

    /// The faces as the service stores an outcome: new persons get fresh ids, rejections of merged ids move to the
    /// person that absorbed them.
    private func applied(_ outcome: Reclustering.Outcome, to faces: [Reclustering.Face], newIDsFrom base: Int64 = 2_000_000) -> [Reclustering.Face] {
        func id(_ person: Reclustering.Person) -> Int64 {
            switch person {
            case .existing(let id): id
            case .new(let n): base + Int64(n)
            }
        }
        let absorbedBy = Dictionary(uniqueKeysWithValues: outcome.merged.map { ($0.from, id($0.into)) })
        return zip(faces, outcome.assignments).map { face, assignment in
            Reclustering.Face(id: face.id, photo: face.photo, embedding: face.embedding, person: assignment.person.map(id),
                              confirmed: face.confirmed, rejected: Set(face.rejected.map { absorbedBy[$0] ?? $0 }),
                              look: assignment.look, mayFoundPerson: face.mayFoundPerson)
        }
    }

    func testUnconstrainedLibraryKeepsEveryFaceAndID() throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(1), person: 8),
            face(3, photo: 2, try unit(0, tilt: 0.1), person: 7),
            face(4, photo: 3, try unit(1, tilt: 0.1), person: 8),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(7), .existing(8), .existing(7), .existing(8)])
        XCTAssertEqual(outcome.newPersonCount, 0)
        XCTAssertTrue(outcome.merged.isEmpty)
    }

    func testConfirmedFacesStayWithTheirPersonEvenWhenTheRuleWouldMoveThem() throws {
        // Face 2 looks like person 7 but a user put it in person 9.
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.05), person: 9, confirmed: true),
            face(3, photo: 3, try unit(0, tilt: 0.1), person: 7),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[1].person, .existing(9))
        XCTAssertNil(outcome.assignments[1].similarity, "a confirmed face was not placed by the rule")
        // The seed of person 9 is in the index from the start: the first face joins it rather than starting 7.
        XCTAssertEqual(outcome.assignments[0].person, .existing(9))
        XCTAssertTrue(outcome.merged.contains { $0.from == 7 && $0.into == .existing(9) }, "person 7 left without a cluster is a recorded merge")
    }

    func testRejectedPersonIsNeverJoinedNorGivenToTheFacesCluster() throws {
        // Face 2 was marked "not person 7": it must neither join 7's cluster nor take id 7 for its own.
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.05), person: 8, rejected: [7]),
            face(3, photo: 3, try unit(0, tilt: 0.05), person: 8),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[0].person, .existing(7))
        XCTAssertNotEqual(outcome.assignments[1].person, .existing(7))
        XCTAssertEqual(outcome.assignments[1].person, .existing(8))
        XCTAssertEqual(outcome.assignments[1].runnerUp, nil, "the rejected person is no runner-up either")
    }

    func testFacesOfOnePhotoNeverShareAPersonWithAConfirmedFaceOfThatPhoto() throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7, confirmed: true),
            face(2, photo: 2, try unit(0, tilt: 0.02), person: 7, confirmed: true),
            face(3, photo: 2, try unit(0, tilt: 0.04), person: 8),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(outcome.assignments[2].person, .existing(8))
        XCTAssertEqual(outcome.assignments[2].runnerUp, nil)
    }

    func testRetiredIDsAreNeverGivenOutAgainAndLeftoversAreNewPersons() throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 5),
            face(2, photo: 2, try unit(1), person: 5),
        ]
        // Two different people under one id: the bigger share keeps 5 (tie: the earlier cluster), the other is new.
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(5), .new(0)])
        XCTAssertEqual(outcome.newPersonCount, 1)
        let retired = Reclustering.run(faces, policy: policy, retired: [5])
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

    func testRunnerUpIsTheNearestPersonTheFaceDidNotJoin() throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 7),
            face(2, photo: 2, try unit(0, tilt: 0.3), person: 7),
        ]
        let outcome = Reclustering.run(faces, policy: IdentityPolicy(matchThreshold: 0.97, smallPersonMargin: 0))
        // cos = 1/sqrt(1.09) ≈ 0.958: below 0.97, within the review window: a new person with 7 as runner-up.
        XCTAssertEqual(outcome.assignments[1].person, .new(0))
        XCTAssertEqual(outcome.assignments[1].runnerUp, .existing(7))
        XCTAssertEqual(try XCTUnwrap(outcome.assignments[1].runnerUpSimilarity), 0.958, accuracy: 0.001)
    }

    /// On real dlib embeddings of lfw_small: a re-cluster of an online-sorted library changes nothing, and applying a
    /// re-cluster and running it again changes nothing either (a fixed point), with corrections in place.
    func testRunningTwiceChangesNothingOnRealEmbeddings() {
        let photos = EmbeddingFixture.shared.photos(inSet: "lfw_small")
        let policy = FaceModel.dlib.policy
        // Faces nobody placed yet: the replay is the online rule, photo by photo.
        var unplaced: [Reclustering.Face] = []
        for (photo, fixturePhoto) in photos.enumerated() {
            for face in fixturePhoto.faces {
                unplaced.append(Reclustering.Face(id: Int64(unplaced.count + 1), photo: Int64(photo), embedding: face.embedding, person: nil))
            }
        }
        let online = Reclustering.run(unplaced, policy: policy)
        XCTAssertEqual(online.newPersonCount, Set(online.assignments.map(\.person)).count)
        XCTAssertTrue(online.merged.isEmpty)
        var faces = applied(online, to: unplaced, newIDsFrom: 1000)
        let first = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(first.assignments.map(\.person), faces.map { .existing($0.person!) })

        // Corrections: confirm face 5 into face 1's person, reject face 10's person for it.
        faces[4] = Reclustering.Face(id: faces[4].id, photo: faces[4].photo, embedding: faces[4].embedding, person: faces[0].person, confirmed: true)
        faces[9] = Reclustering.Face(id: faces[9].id, photo: faces[9].photo, embedding: faces[9].embedding, person: faces[9].person,
                                     confirmed: false, rejected: [faces[9].person!])
        let corrected = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(corrected.assignments[4].person, .existing(faces[0].person!))
        XCTAssertNotEqual(corrected.assignments[9].person, .existing(faces[9].person!))
        let again = Reclustering.run(applied(corrected, to: faces), policy: policy, retired: Set(corrected.merged.map(\.from)))
        let changed = zip(applied(corrected, to: faces), again.assignments).filter { $0.1.person != .existing($0.0.person!) }
        XCTAssertEqual(changed.count, 0, "faces moved by a second run: \(changed.map(\.0.id))")
        XCTAssertEqual(again.newPersonCount, 0)
        XCTAssertTrue(again.merged.isEmpty)
    }

    /// A merge's parts stay side by side: the confirmed faces of a person's own look and of a look kept from a merge
    /// seed one look each, and a face that matches only the merged-in look joins the person there (a blend of both
    /// looks would be too far from it).
    func testConfirmedLooksOfAMergeSeedOneLookEachAndAFaceNearOneJoinsThePersonThere() throws {
        let faces = [
            Reclustering.Face(id: 1, photo: 1, embedding: try unit(0), person: 10, confirmed: true),
            Reclustering.Face(id: 2, photo: 2, embedding: try unit(0, tilt: 0.1), person: 10, confirmed: true),
            Reclustering.Face(id: 3, photo: 3, embedding: try unit(1), person: 10, confirmed: true, look: 11),
            Reclustering.Face(id: 4, photo: 4, embedding: try unit(1, tilt: 0.1), person: 10, confirmed: true, look: 11),
            face(5, photo: 5, try unit(1, tilt: 0.2), person: 12),
            face(6, photo: 6, try unit(2), person: 13),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(10), .existing(10), .existing(10), .existing(10), .existing(10), .existing(13)])
        XCTAssertEqual(outcome.assignments.map(\.look), [nil, nil, 11, 11, 11, nil])
        XCTAssertEqual(outcome.merged.map(\.from), [12])

        let blended = Reclustering.run(faces.map { Reclustering.Face(id: $0.id, photo: $0.photo, embedding: $0.embedding, person: $0.person,
                                                                     confirmed: $0.confirmed) }, policy: policy)
        XCTAssertEqual(blended.assignments[4].person, .existing(12), "one blended mean of both looks does not take the face")
    }

    /// An unsure face joins a person it matches but starts none: alone it stays unsorted, and a face that may found
    /// a person still does so in the same replay.
    func testAnUnsureFaceJoinsAPersonItMatchesButStartsNone() throws {
        let faces = [
            face(1, photo: 1, try unit(0), person: 10),
            Reclustering.Face(id: 2, photo: 2, embedding: try unit(0, tilt: 0.1), person: nil, mayFoundPerson: false),
            Reclustering.Face(id: 3, photo: 3, embedding: try unit(1), person: 11, mayFoundPerson: false),
            Reclustering.Face(id: 4, photo: 4, embedding: try unit(2), person: nil),
        ]
        let outcome = Reclustering.run(faces, policy: policy)
        XCTAssertEqual(persons(outcome), [.existing(10), .existing(10), nil, .new(0)])
        XCTAssertEqual(outcome.newPersonCount, 1)
        XCTAssertTrue(outcome.merged.isEmpty, "a person whose only face became unsorted is not merged into anyone")
        let again = Reclustering.run(applied(outcome, to: faces), policy: policy)
        XCTAssertEqual(persons(again), [.existing(10), .existing(10), nil, .existing(2_000_000)], "a second run changes nothing")
    }
}
