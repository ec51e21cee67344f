import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import XCTest

/// Behaviours proven through the HTTP API, run on SQLite and on PostgreSQL (see the two test classes).
enum Scenarios {
    /// Happy path: every face_recognition_examples person gets one id across photos; no id is shared.
    static func ingestedPeopleGetConsistentDistinctIDs(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            let status = try await service.waitUntilDone(try await service.ingest(folder, batchSize: 5))
            XCTAssertEqual(status.processed, status.scanned)
            XCTAssertEqual(status.failed, 0)
            XCTAssertEqual(status.inserted, status.scanned)
            XCTAssertEqual(status.status, "COMPLETED")
            XCTAssertGreaterThan(status.faces, 20)
            var idsByIdentity: [String: Set<Int64>] = [:]
            for summary in try await service.photos() {
                let parts = summary.path.dropFirst(folder.path.count + 1).split(separator: "/")
                guard parts.count == 2, !parts[0].hasPrefix("_") else { continue }
                let photo = try await service.photo(summary.photoID)
                XCTAssertEqual(photo.status, .processed)
                guard let labelled = photo.detections?.max(by: { $0.bbox.area < $1.bbox.area }) else { continue }
                idsByIdentity[String(parts[0]), default: []].insert(labelled.personID)
            }
            XCTAssertEqual(idsByIdentity.count, 6)
            for (identity, ids) in idsByIdentity { XCTAssertEqual(ids.count, 1, "\(identity) split over \(ids)") }
            let all = idsByIdentity.values.flatMap { $0 }
            XCTAssertEqual(Set(all).count, all.count, "two people share an id: \(idsByIdentity)")

            let obamaID = idsByIdentity["obama"]!.first!
            let person = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertGreaterThanOrEqual(person.photoCount, 6)
            XCTAssertTrue(person.examplePhotos.allSatisfy { $0.path.contains("/obama/") || $0.path.contains("/_group/") })
            XCTAssertNil(person.representativeEmbedding)
        }
    }

    /// A photo without faces is PROCESSED with no_faces; group photos carry several persons.
    static func noFacePhotoIsMarked(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("dlib_faces")))
            let photos = try await service.photos()
            let noFace = try XCTUnwrap(photos.first { $0.path.contains("/_noface/") })
            XCTAssertEqual(noFace.status, .processed)
            XCTAssertEqual(noFace.noFaces, true)
            XCTAssertEqual(noFace.personIDs, [])
            let group = try XCTUnwrap(photos.max { $0.personIDs.count < $1.personIDs.count })
            XCTAssertGreaterThan(group.personIDs.count, 10)
            XCTAssertEqual(Set(group.personIDs).count, group.personIDs.count)
        }
    }

    /// ML answers 500 first: FAILED with retry_count 1, then the retry scheduler requeues it and it completes.
    static func failedPhotoIsRetriedUntilProcessed(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, ml: .init(failFirst: 2), tune: { $0.workerConcurrency = 1 }) { service in
            let folder = URL.faces("face_recognition_examples/biden")
            let status = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(status.processed, 2)
            let photos = try await service.photos()
            XCTAssertEqual(photos.map(\.retryCount).reduce(0, +), 2, "two failed attempts were counted")
            XCTAssertTrue(photos.allSatisfy { $0.status == .processed && $0.lastError == nil })
        }
    }

    /// A dispatch whose result never arrives is reset after the processing timeout and then retried.
    static func staleProcessingIsResetAndRetried(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, ml: .init(dropFirst: 1), tune: {
            $0.processingTimeoutSeconds = 1
            $0.workerConcurrency = 1
        }) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/rose_leslie")))
            XCTAssertEqual(status.processed, 2)
            let retried = try await service.photos().filter { $0.retryCount == 1 }
            XCTAssertEqual(retried.count, 1)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 3, "the lost photo was sent again")
        }
    }

    /// 429 from the ML service is back-off, not failure: no retry is counted.
    static func busyMLServiceIsNotAFailure(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, ml: .init(busyFirst: 3)) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/kit_harington")))
            XCTAssertEqual(status.processed, 3)
            let photos = try await service.photos()
            XCTAssertTrue(photos.allSatisfy { $0.retryCount == 0 })
        }
    }

    /// With several ML services configured, one that is down costs nothing: its photos go to the other at once
    /// (no photo fails, none waits for a retry), and the dead one is backed off.
    static func deadMLServiceIsSkippedForALiveOne(_ flavor: DatabaseFlavor) async throws {
        let dead = "http://127.0.0.1:9"
        try await TestService.run(flavor, tune: { $0.mlServiceURLs.insert(dead, at: 0) }) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(status.failed, 0)
            XCTAssertEqual(status.processed, status.inserted)
            let photos = try await service.photos()
            XCTAssertTrue(photos.allSatisfy { $0.retryCount == 0 })
            let pool = service.services.ml.servicesStatus
            XCTAssertGreaterThan(pool.first { $0.url == dead }?.failuresInARow ?? 0, 0)
        }
    }

    /// Re-ingesting a folder that overlaps an earlier one inserts only new files and keeps every id.
    static func reingestOfOverlappingFolderKeepsIDs(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            let first = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let before = Dictionary(uniqueKeysWithValues: try await service.photos().map { ($0.path, $0) })
            let second = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(second.skipped, first.scanned)
            XCTAssertEqual(second.inserted, second.scanned - first.scanned)
            let after = try await service.photos()
            for photo in after where before[photo.path] != nil {
                XCTAssertEqual(photo.photoID, before[photo.path]!.photoID)
                XCTAssertEqual(photo.personIDs, before[photo.path]!.personIDs)
            }
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, after.count, "each photo was processed exactly once")
            let third = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(third.inserted, 0)
            XCTAssertEqual(third.queued, 0)
            XCTAssertEqual(third.personsCreated, 0)
            XCTAssertEqual(third.personsMatched, 0)
            XCTAssertGreaterThan(second.personsCreated, 0)
        }
    }

    /// A file replaced by a different picture (size/mtime and hash changed) is processed again under its
    /// photo id; its old faces leave their person, and nothing else is reprocessed.
    static func changedFileIsReprocessedUnderItsID(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("changed-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let obama = URL.faces("face_recognition_examples/obama")
            for name in ["obama.jpg", "obama2.jpg", "obama3.jpg"] {
                try FileManager.default.copyItem(at: obama.appendingPathComponent(name), to: folder.appendingPathComponent(name))
            }
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let before = try await service.photos()
            let obamaID = try XCTUnwrap(before.first?.personIDs.first)
            XCTAssertTrue(before.allSatisfy { $0.personIDs == [obamaID] }, "\(before)")
            let replaced = folder.appendingPathComponent("obama3.jpg")
            try FileManager.default.removeItem(at: replaced)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: replaced)
            let second = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(second.inserted, 1)
            XCTAssertEqual(second.skipped, 2)
            let after = try await service.photos()
            XCTAssertEqual(after.map(\.photoID), before.map(\.photoID))
            let changed = try XCTUnwrap(after.first { $0.path == replaced.path })
            XCTAssertEqual(changed.status, .processed)
            XCTAssertNotEqual(changed.personIDs, [obamaID])
            let person = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertEqual(person.photoCount, 2)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 4)
        }
    }

    /// The same callback twice returns the same answer and writes nothing the second time; a second,
    /// different result for an already processed photo is ignored.
    static func duplicateCallbackIsIdempotent(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            let folder = URL.faces("face_recognition_examples/alex_lacamoire")
            await service.services.ingest.waitForScan(try await service.ingest(folder))
            let firstPhoto = try await service.photos().first
            let photo = try XCTUnwrap(firstPhoto)
            let fixture = try XCTUnwrap(EmbeddingFixture.shared.photo("face_recognition_examples/alex_lacamoire/" + photo.filename))
            let body = callback(photoID: photo.photoID, callbackID: "p\(photo.photoID)-a1", faces: fixture.faces)
            let first = try await service.request(.POST, "/callback/photo-processed", body: body)
            XCTAssertEqual(first.status, .ok, first.reason)
            let second = try await service.request(.POST, "/callback/photo-processed", body: body)
            XCTAssertEqual(try second.decode(CallbackResponse.self), try first.decode(CallbackResponse.self))
            let other = try await service.request(.POST, "/callback/photo-processed",
                                                  body: callback(photoID: photo.photoID, callbackID: "p\(photo.photoID)-a2", faces: fixture.faces))
            let otherReply = try other.decode(CallbackResponse.self)
            XCTAssertEqual(otherReply.createdPersonIDs, [])
            let stored = try await service.photo(photo.photoID)
            XCTAssertEqual(stored.detections?.count, fixture.faces.count)
            XCTAssertEqual(try first.decode(CallbackResponse.self).personIDs, stored.personIDs)
            let faceRows = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM embeddings").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(faceRows, fixture.faces.count)
        }
    }

    /// Concurrent callbacks carrying the same unseen face create exactly one person.
    static func concurrentCallbacksCreateOnePersonForOneNewFace(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let photos = try await service.photos()
            XCTAssertGreaterThanOrEqual(photos.count, 4)
            let face = try XCTUnwrap(EmbeddingFixture.shared.photo("lfw_small/Aaron_Peirsol/" + photos[0].filename)?.faces.first)
            let replies = try await withThrowingTaskGroup(of: CallbackResponse.self) { group in
                for photo in photos {
                    group.addTask {
                        try await service.request(.POST, "/callback/photo-processed",
                                                  body: callback(photoID: photo.photoID, callbackID: "c\(photo.photoID)", faces: [face])).decode()
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            XCTAssertEqual(replies.flatMap(\.createdPersonIDs).count, 1)
            XCTAssertEqual(Set(replies.flatMap(\.personIDs)).count, 1)
        }
    }

    /// Bad input gets a clear 4xx and writes nothing.
    static func badInputGetsClearErrors(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.allowedRoots = [URL.faces("lfw_small").path] }) { service in
            let missing = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: "/no/such/folder"))
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertTrue(missing.reason.contains("folder not found"), missing.reason)
            let outside = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: URL.faces("dlib_faces").path))
            XCTAssertEqual(outside.status, .forbidden)
            let malformed = try await service.request(.POST, "/ingest-folder", body: Data("{\"path\": ".utf8))
            XCTAssertEqual(malformed.status, .badRequest)
            let s_photo999 = try await service.request(.GET, "/photo/999").status
            XCTAssertEqual(s_photo999, .notFound)
            let s_photoabc = try await service.request(.GET, "/photo/abc").status
            XCTAssertEqual(s_photoabc, .unprocessableEntity)
            let s_person999 = try await service.request(.GET, "/person/999").status
            XCTAssertEqual(s_person999, .notFound)
            let s_ingeststatusnope = try await service.request(.GET, "/ingest-status/nope").status
            XCTAssertEqual(s_ingeststatusnope, .notFound)
            let face = EmbeddingFixture.shared.photos(inSet: "lfw_small")[0].faces
            let unknown = try await service.request(.POST, "/callback/photo-processed", body: callback(photoID: 424242, callbackID: "x", faces: face))
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertTrue(unknown.reason.contains("424242"))
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let firstPhoto = try await service.photos().first
            let photoID = try XCTUnwrap(firstPhoto?.photoID)
            var broken = try JSONSerialization.jsonObject(with: callback(photoID: photoID, callbackID: "y", faces: face + face)) as! [String: Any]
            var detections = broken["detections"] as! [[String: Any]]
            detections[1]["embedding"] = "AAAA"
            broken["detections"] = detections
            let invalid = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: broken))
            XCTAssertEqual(invalid.status, .unprocessableEntity)
            XCTAssertTrue(invalid.reason.contains("embedding"), invalid.reason)
            let stored = try await service.photo(photoID)
            XCTAssertEqual(stored.status, .ready)
            XCTAssertEqual(stored.detections, [])
            XCTAssertEqual(service.services.identity.personCount, 0)
        }
    }

    static func callback(photoID: Int64, callbackID: String?, faces: [EmbeddingFixture.Face],
                         model: FakeMLService.FakeModel = .dlib) -> Data {
        let body: [String: Any] = [
            "photo_id": photoID, "callback_id": callbackID as Any, "status": "PROCESSED", "width": 250, "height": 250,
            "detections": faces.map { ["bbox": $0.bbox.array, "embedding": model.embedding($0), "confidence": 0.9] },
            "new_persons": [], "meta": ["model_version": model.modelVersion],
        ]
        return try! JSONSerialization.data(withJSONObject: body)
    }
}
