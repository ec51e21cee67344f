import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import XCTest

/// One face model per database, and `reprocess` to switch models or re-run one: results of another model are
/// refused, a reprocess keeps every person id, and an interrupted one resumes without redoing photos.
class FaceModelTests: DatabaseTestCase {
    /// A database of dlib faces refuses an ArcFace result with 409 and the way out (`reprocess`); nothing is written.
    /// An unknown model or a vector of the wrong length for its own model is a 422.
    func testResultsOfAnotherModelAreRefused() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let before = try await service.photos()
            let persons = service.services.identity.personCount
            XCTAssertEqual(service.services.identity.model, .dlib)
            let health = try await service.request(.GET, "/health").body
            XCTAssertTrue(String(decoding: health, as: UTF8.self).contains(#""model":"dlib""#))

            let face = EmbeddingFixture.shared.photos(inSet: "lfw_small")[1].faces
            let photoID = try XCTUnwrap(before.first?.photoID)
            let detectionsBefore = try await service.photo(photoID).detections
            let arcface = try await service.request(.POST, "/callback/photo-processed",
                                                    body: FakeMLService.callback(photoID: photoID, callbackID: "arc", faces: face, model: .arcface))
            XCTAssertEqual(arcface.status, .conflict)
            XCTAssertTrue(arcface.reason.contains("photo-sorter reprocess --model arcface"), arcface.reason)

            var unknown = try JSONSerialization.jsonObject(with: FakeMLService.callback(photoID: photoID, callbackID: "u", faces: face)) as! [String: Any]
            unknown["meta"] = ["model_version": "facenet-512+mtcnn"]
            let unknownReply = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: unknown))
            XCTAssertEqual(unknownReply.status, .unprocessableEntity)
            XCTAssertTrue(unknownReply.reason.contains("facenet-512"), unknownReply.reason)

            XCTAssertEqual(service.services.identity.personCount, persons)
            let detectionsAfter = try await service.photo(photoID).detections
            XCTAssertEqual(detectionsAfter, detectionsBefore)
            XCTAssertEqual(service.services.identity.model, .dlib)
        }
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let photos = try await service.photos()
            let photoID = try XCTUnwrap(photos.first?.photoID)
            var short = try JSONSerialization.jsonObject(with: FakeMLService.callback(
                photoID: photoID, callbackID: "s", faces: EmbeddingFixture.shared.photos(inSet: "lfw_small")[0].faces)) as! [String: Any]
            short["meta"] = ["model_version": FakeMLService.FakeModel.arcface.modelVersion]
            let reply = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: short))
            XCTAssertEqual(reply.status, .unprocessableEntity)
            XCTAssertTrue(reply.reason.contains("512"), reply.reason)
            XCTAssertNil(service.services.identity.model)
        }
    }

    /// Reprocess with the same model on an unchanged set: every photo keeps exactly its person ids.
    func testReprocessWithSameModelKeepsEveryID() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let before = try await personIDsByPath(service)
            let persons = service.services.identity.personCount
            let status = try await service.reprocess(body: "{}")
            XCTAssertEqual(status.model, "dlib")
            let result = try XCTUnwrap(status.result)
            XCTAssertEqual(result.personsKept, persons)
            XCTAssertEqual(result.personsCreated, 0)
            XCTAssertEqual(result.personsRemoved, 0)
            XCTAssertEqual(result.photos, before.count)
            let after = try await personIDsByPath(service)
            XCTAssertEqual(after, before)
            XCTAssertEqual(service.services.identity.personCount, persons)
        }
    }

    /// Switching models: ArcFace results are refused until `reprocess --model arcface` runs; then every photo is
    /// re-analysed, persons keep their ids (thresholds pinned so both models group alike), the database holds
    /// 512-d ArcFace faces, and dlib results are the ones refused.
    func testReprocessSwitchesModelKeepingIDs() async throws {
        let pinned: (inout ServiceConfig) -> Void = {
            $0.matchThreshold = 0.92; $0.smallPersonMargin = 0.01; $0.mirrorThreshold = 0.985
        }
        try await TestService.run(flavor, tune: pinned) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let before = try await personIDsByPath(service)
            service.ml.run(.arcface)

            let wrongModel = try await service.request(.POST, "/reprocess", body: Data(#"{"model": "dlib"}"#.utf8))
            XCTAssertEqual(wrongModel.status, .conflict)
            XCTAssertTrue(wrongModel.reason.contains("PHOTO_SORTER_ML_MODEL=dlib"), wrongModel.reason)
            let unknown = try await service.request(.POST, "/reprocess", body: Data(#"{"model": "facenet"}"#.utf8))
            XCTAssertEqual(unknown.status, .unprocessableEntity)

            let status = try await service.reprocess(body: #"{"model": "arcface"}"#)
            XCTAssertEqual(status.model, "arcface")
            XCTAssertEqual(status.result?.personsKept, Set(before.values.flatMap { $0 }).count)
            let after = try await personIDsByPath(service)
            XCTAssertEqual(after, before)
            XCTAssertEqual(service.services.identity.model, .arcface)
            let somePerson = try XCTUnwrap(before.values.first { !$0.isEmpty }?.first)
            let person = try await service.request(.GET, "/person/\(somePerson)?include_embedding=true").decode(PersonView.self)
            XCTAssertEqual(Data(base64Encoded: try XCTUnwrap(person.representativeEmbedding))?.count, 512 * 4)

            let photos = try await service.photos()
            let photoID = try XCTUnwrap(photos.first?.photoID)
            let dlib = try await service.request(.POST, "/callback/photo-processed", body: FakeMLService.callback(
                photoID: photoID, callbackID: "old", faces: EmbeddingFixture.shared.photos(inSet: "lfw_small")[0].faces))
            XCTAssertEqual(dlib.status, .conflict)
            XCTAssertTrue(dlib.reason.contains("model arcface"), dlib.reason)
        }
    }

    /// An interrupted reprocess resumes: starting it again with the same model continues the same job, and photos
    /// already analysed by it are not sent to the ML service again.
    func testInterruptedReprocessResumesWithoutRedoingPhotos() async throws {
        try await TestService.run(flavor) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let before = try await personIDsByPath(service)
            let sentBefore = service.ml.requestedPhotoIDs.count
            service.ml.dropNext(2)  // two photos of the job are lost in flight, as when `reprocess` is stopped
            let started = try await service.request(.POST, "/reprocess", body: Data("{}".utf8)).decode(ReprocessStatus.self)
            var progress = started
            for _ in 0..<300 where progress.analysed < status.processed - 2 {
                try await Task.sleep(for: .milliseconds(100))
                progress = try await service.request(.GET, "/reprocess/\(started.jobID)").decode(ReprocessStatus.self)
            }
            XCTAssertEqual(progress.status, "RUNNING")
            XCTAssertEqual(progress.analysed, status.processed - 2)
            XCTAssertEqual(progress.pending, 2)

            // While the job runs, only results of its model are staged: another model, or a vector of the wrong
            // length for the job's model, is refused and stages nothing.
            let photosNow = try await service.photos()
            let inFlight = try XCTUnwrap(photosNow.first { $0.status == .processing }?.photoID)
            let face = EmbeddingFixture.shared.photos(inSet: "lfw_small")[0].faces
            let otherModel = try await service.request(.POST, "/callback/photo-processed", body: FakeMLService.callback(
                photoID: inFlight, callbackID: "other-model", faces: face, model: .arcface))
            XCTAssertEqual(otherModel.status, .conflict, otherModel.reason)
            var wrongLength = try JSONSerialization.jsonObject(with: FakeMLService.callback(
                photoID: inFlight, callbackID: "wrong-length", faces: face, model: .arcface)) as! [String: Any]
            wrongLength["meta"] = ["model_version": FakeMLService.FakeModel.dlib.modelVersion]
            let wrongLengthReply = try await service.request(.POST, "/callback/photo-processed",
                                                             body: try JSONSerialization.data(withJSONObject: wrongLength))
            XCTAssertEqual(wrongLengthReply.status, .conflict, wrongLengthReply.reason)
            XCTAssertTrue(wrongLengthReply.reason.contains("128"), wrongLengthReply.reason)
            let unchanged = try await service.request(.GET, "/reprocess/\(started.jobID)").decode(ReprocessStatus.self)
            XCTAssertEqual(unchanged.analysed, progress.analysed)

            // What a restart does with photos left PROCESSING, then the same command again.
            let lost = try await service.services.database.sql.raw(
                "UPDATE photos SET status = 'READY' WHERE status = 'PROCESSING' RETURNING id").all().count
            XCTAssertEqual(lost, 2)
            let resumed = try await service.reprocess(body: "{}")
            XCTAssertEqual(resumed.jobID, started.jobID)
            XCTAssertEqual(resumed.result?.photos, status.processed)
            let sent = service.ml.requestedPhotoIDs.dropFirst(sentBefore)
            XCTAssertEqual(sent.count, status.processed + 2, "only the two lost photos are sent twice")
            let after = try await personIDsByPath(service)
            XCTAssertEqual(after, before)
        }
    }

    // MARK: Helpers

    /// Every photo's person ids, by path.
    private func personIDsByPath(_ service: TestService) async throws -> [String: [Int64]] {
        Dictionary(uniqueKeysWithValues: try await service.photos().map { ($0.path, $0.personIDs.sorted()) })
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class FaceModelTestsOnPostgres: FaceModelTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testResultsOfAnotherModelAreRefused() async throws { try await super.testResultsOfAnotherModelAreRefused() }
}
