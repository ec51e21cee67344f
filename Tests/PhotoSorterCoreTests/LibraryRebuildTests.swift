import PhotoSorterCore
import PhotoSorterTestSupport
import XCTest

final class LibraryRebuildTests: XCTestCase {
    private func unit(_ hot: Int) throws -> Embedding {
        var values = [Float](repeating: 0, count: 128)
        values[hot] = 1
        return try Embedding(normalising: values)
    }

    func testReplayGroupsLikeTheOnlineRuleAndMarksTheFaceThatStartedEachCluster() throws {
        let a = try unit(0), b = try unit(1)
        let photos = [
            LibraryRebuild.Photo(id: 10, faces: [a]),
            LibraryRebuild.Photo(id: 11, faces: [b, a]),
            LibraryRebuild.Photo(id: 12, faces: []),
            LibraryRebuild.Photo(id: 13, faces: [b]),
        ]
        let (assignments, clusters) = LibraryRebuild.cluster(photos, policy: IdentityPolicy(matchThreshold: 0.9, smallPersonMargin: 0))
        XCTAssertEqual(clusters, 2)
        XCTAssertEqual(assignments.map { $0.map(\.cluster) }, [[0], [1, 0], [], [1]])
        XCTAssertEqual(assignments.map { $0.map(\.createdCluster) }, [[true], [true, false], [], [false]])
        XCTAssertEqual(assignments[1][1].similarity, 1)
        XCTAssertNil(assignments[1][0].similarity)
    }

    func testEachClusterKeepsTheOldIDItSharesTheMostPhotosWithAndEachIDIsUsedOnce() {
        // Old person 7 was in photos 1, 2, 3; person 8 in photos 3, 4. The new grouping splits photo 3's
        // person differently: cluster 0 = {1, 2}, cluster 1 = {3, 4}, cluster 2 = {5} (new).
        let kept = LibraryRebuild.keepIDs(
            clusterPhotos: [[1, 2], [3, 4], [5]],
            oldPersonsByPhoto: [1: [7], 2: [7], 3: [7, 8], 4: [8]])
        XCTAssertEqual(kept, [0: 7, 1: 8])
    }

    func testTiesGoToTheLowerOldIDThenTheEarlierCluster() {
        let kept = LibraryRebuild.keepIDs(clusterPhotos: [[1], [2]], oldPersonsByPhoto: [1: [9, 4], 2: [4]])
        XCTAssertEqual(kept[0], 4)
        XCTAssertNil(kept[1], "person 4 is taken by cluster 0; cluster 1 shares no other old person")
    }

    /// On the real dlib embeddings of lfw_small, replaying the same faces in the same order reproduces the
    /// online grouping exactly, so a reprocess with an unchanged model keeps every id.
    func testReplayInCommitOrderReproducesTheOnlineGroupingOnRealEmbeddings() {
        let photos = EmbeddingFixture.shared.photos(inSet: "lfw_small")
        let policy = FaceModel.dlib.policy
        let rebuildPhotos = photos.enumerated().map { LibraryRebuild.Photo(id: Int64($0.offset), faces: $0.element.faces.map(\.embedding)) }
        let first = LibraryRebuild.cluster(rebuildPhotos, policy: policy)
        var clusterPhotos = [Set<Int64>](repeating: [], count: first.clusterCount)
        var oldPersons: [Int64: [Int64]] = [:]
        for (photo, assignments) in zip(rebuildPhotos, first.assignments) {
            for a in assignments {
                clusterPhotos[a.cluster].insert(photo.id)
                oldPersons[photo.id, default: []].append(Int64(1000 + a.cluster))
            }
        }
        let again = LibraryRebuild.cluster(rebuildPhotos, policy: policy)
        XCTAssertEqual(again.assignments, first.assignments)
        let kept = LibraryRebuild.keepIDs(clusterPhotos: clusterPhotos, oldPersonsByPhoto: oldPersons)
        XCTAssertEqual(kept.count, first.clusterCount)
        XCTAssertTrue(kept.allSatisfy { $0.value == Int64(1000 + $0.key) })
    }
}
