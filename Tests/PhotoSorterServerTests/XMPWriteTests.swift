import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// `xmp write` (README "Face names in XMP sidecars"): what it writes is read back exactly by the peer tools, exiftool
/// and exiv2; an existing sidecar keeps everything else; writing twice changes nothing; photos are never touched; a
/// sidecar that cannot be written is reported while the others are written; regions follow the photo as displayed.
class XMPWriteTests: DatabaseTestCase {
    typealias Folder = FollowingFilesTests.Folder

    /// Three photos of Obama and one of Biden, sorted, with Obama named.
    func makeLibrary(_ service: TestService, layout: [String: String] = [:]) async throws -> (Folder, obama: Int64, biden: Int64) {
        let folder = try Folder("xmp")
        for (n, fixture) in FollowingFilesTests.obama.enumerated() { try folder.add(fixture, as: layout["obama\(n)"] ?? "obama\(n).jpg") }
        try folder.add(FollowingFilesTests.biden, as: layout["biden"] ?? "biden.jpg")
        _ = try await service.waitUntilDone(try await service.ingest(folder.url))
        let obamaPhoto = try await service.photo(path: folder.path(layout["obama0"] ?? "obama0.jpg"))
        let bidenPhoto = try await service.photo(path: folder.path(layout["biden"] ?? "biden.jpg"))
        let obama = try XCTUnwrap(obamaPhoto?.personIDs.first), biden = try XCTUnwrap(bidenPhoto?.personIDs.first)
        try await rename(obama, "Barack Obama", service)
        return (folder, obama, biden)
    }

    func rename(_ person: Int64, _ name: String, _ service: TestService) async throws {
        let reply = try await service.request(.PATCH, "/person/\(person)", json: PersonUpdate(displayName: .some(name)))
        XCTAssertEqual(reply.status, .ok, reply.reason)
    }

    /// What exiftool reads from a sidecar: regions, subject, hierarchical subject, digiKam tags.
    struct ExiftoolReading {
        let width: Int?
        let height: Int?
        let regions: [[String: Any]]
        let subject: [String]
        let hierarchical: [String]
        let tags: [String]
        let all: [String: Any]

        init(_ sidecar: String) throws {
            let output = try XMPWriteTests.tool("exiftool", "-j", "-struct", "-n", "-XMP:all", sidecar)
            let entry = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])?.first)
            all = entry
            let info = entry["RegionInfo"] as? [String: Any]
            let dimensions = info?["AppliedToDimensions"] as? [String: Any]
            width = dimensions?["W"] as? Int
            height = dimensions?["H"] as? Int
            regions = info?["RegionList"] as? [[String: Any]] ?? []
            subject = entry["Subject"] as? [String] ?? []
            hierarchical = entry["HierarchicalSubject"] as? [String] ?? []
            tags = entry["TagsList"] as? [String] ?? []
        }

        func region(named name: String) -> [String: Any]? { regions.first { $0["Name"] as? String == name } }
    }

    /// `exiv2 -px`: each XMP key with its value.
    static func exiv2(_ sidecar: String) throws -> [String: String] {
        let line = try Regex(#"^(\S+)\s+\S+\s+\d+\s*(.*)$"#)
        return try tool("exiv2", "-px", sidecar).split(separator: "\n").reduce(into: [:]) { values, text in
            guard let match = try line.wholeMatch(in: String(text)) else { return }
            values[String(match.output[1].substring!)] = String(match.output[2].substring!)
        }
    }

    /// Runs a peer tool (exiftool, exiv2) and returns what it printed; a failure fails the test with its output.
    @discardableResult
    static func tool(_ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestService.UnexpectedReply(description: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }

    static func digest(_ path: String) throws -> String {
        SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: path))).hex
    }

    /// The region `xmp write` should write for each face of a photo, from its stored size and boxes.
    func expectedRegions(_ photo: PhotoView, names: [Int64: String]) -> SidecarFaces {
        SidecarFaces(frameWidth: photo.width!, frameHeight: photo.height!, quarterTurns: 0,
                     faces: (photo.detections ?? []).compactMap { face in
                         face.personID.flatMap { names[$0] }.map { NamedFace(faceID: face.embeddingID, box: face.bbox, name: $0) } })
    }

    func assertRegion(_ region: [String: Any]?, is expected: FaceRegion, file: StaticString = #filePath, line: UInt = #line) throws {
        let region = try XCTUnwrap(region, "no region named \(expected.name)", file: file, line: line)
        XCTAssertEqual(region["Type"] as? String, "Face", file: file, line: line)
        let area = try XCTUnwrap(region["Area"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(area["Unit"] as? String, "normalized", file: file, line: line)
        for (key, value) in [("X", expected.x), ("Y", expected.y), ("W", expected.w), ("H", expected.h)] {
            XCTAssertEqual(try XCTUnwrap(area[key] as? Double, key, file: file, line: line), value, key, file: file, line: line)
        }
        let extensions = region["Extensions"] as? [String: Any]
        XCTAssertEqual(extensions?["XMP-photosorter:FaceID"] as? Int, Int(expected.faceID), "photo-sorter's marker", file: file, line: line)
    }

    /// Every photo of a named, visible person gets `photo.jpg.xmp` with one MWG face region per named face and the
    /// name as keywords, exactly as exiftool and exiv2 read them; photos of unnamed or hidden persons get none; the
    /// photos' bytes do not change.
    func testRegionsAndNamesAreReadBackExactlyByExiftoolAndExiv2() async throws {
        try await TestService.run(flavor) { service in
            let (folder, obama, biden) = try await makeLibrary(service)
            defer { folder.delete() }
            let photos = folder.files.filter { $0.hasSuffix(".jpg") }
            let digests = try photos.map(Self.digest)
            try await rename(biden, "Joe Biden", service)
            let hidden = try await service.request(.PATCH, "/person/\(biden)", json: PersonUpdate(hidden: true))
            XCTAssertEqual(hidden.status, .ok, hidden.reason)

            let result = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(result.photos, 3)
            XCTAssertEqual(result.written, 3)
            XCTAssertEqual(result.failed, 0, "\(result.failures)")
            XCTAssertEqual(try photos.map(Self.digest), digests, "photos unchanged")
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path("biden.jpg.xmp")), "a hidden person is not written")

            for n in 0..<3 {
                let stored = try await service.photo(path: folder.path("obama\(n).jpg"))
                let photo = try XCTUnwrap(stored)
                let expected = expectedRegions(photo, names: [obama: "Barack Obama"])
                let sidecar = folder.path("obama\(n).jpg.xmp")
                let exiftool = try ExiftoolReading(sidecar)
                XCTAssertEqual(exiftool.width, photo.width)
                XCTAssertEqual(exiftool.height, photo.height)
                XCTAssertEqual(exiftool.regions.count, expected.regions.count)
                try assertRegion(exiftool.regions.first, is: try XCTUnwrap(expected.regions.first))
                XCTAssertEqual(exiftool.subject, ["Barack Obama"])
                XCTAssertEqual(exiftool.hierarchical, ["People|Barack Obama"])
                XCTAssertEqual(exiftool.tags, ["People/Barack Obama"])

                let exiv2 = try Self.exiv2(sidecar)
                let region = "Xmp.mwg-rs.Regions/mwg-rs:RegionList[1]"
                XCTAssertEqual(exiv2["\(region)/mwg-rs:Name"], "Barack Obama")
                XCTAssertEqual(exiv2["\(region)/mwg-rs:Type"], "Face")
                for (field, value) in [("x", expected.regions[0].x), ("y", expected.regions[0].y), ("w", expected.regions[0].w), ("h", expected.regions[0].h)] {
                    XCTAssertEqual(exiv2["\(region)/mwg-rs:Area/stArea:\(field)"].flatMap(Double.init), value, field)
                }
                XCTAssertEqual(exiv2["Xmp.mwg-rs.Regions/mwg-rs:AppliedToDimensions/stDim:w"], "\(photo.width!)")
                XCTAssertEqual(exiv2["Xmp.dc.subject"], "Barack Obama")
                XCTAssertEqual(exiv2["Xmp.lr.hierarchicalSubject"], "People|Barack Obama")
                XCTAssertEqual(exiv2["Xmp.digiKam.TagsList"], "People/Barack Obama")
            }
        }
    }

    /// A second write finds every sidecar as it should be: nothing is written, the bytes are identical, and each
    /// face still has exactly one region.
    func testWritingTwiceChangesNothing() async throws {
        try await TestService.run(flavor) { service in
            let (folder, _, _) = try await makeLibrary(service)
            defer { folder.delete() }
            _ = try await service.services.xmp.run(XMPWriteRequest())
            let sidecars = folder.files.filter { $0.hasSuffix(".xmp") }.sorted()
            XCTAssertEqual(sidecars.count, 3)
            let first = try sidecars.map(Self.digest)
            let again = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(again.written, 0)
            XCTAssertEqual(again.unchanged, 3)
            XCTAssertEqual(try sidecars.map(Self.digest), first, "byte-identical")
            for sidecar in sidecars { XCTAssertEqual(try ExiftoolReading(sidecar).regions.count, 1, sidecar) }
        }
    }

    /// A sidecar made by another tool (title, rating, a keyword, a region of its own) keeps all of it: photo-sorter's
    /// region is added beside the foreign one, and after a rename its region and keywords follow while the user's stay.
    func testExistingSidecarKeepsItsOtherTagsAndForeignRegions() async throws {
        try await TestService.run(flavor) { service in
            let (folder, obama, _) = try await makeLibrary(service)
            defer { folder.delete() }
            let sidecar = folder.path("obama0.jpg.xmp")
            try Self.tool("exiftool", "-q", "-o", sidecar, "-XMP-dc:Title=Inauguration", "-XMP-xmp:Rating=4", "-XMP-dc:Subject=Holiday",
                          "-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=250,H=250,Unit=pixel},RegionList=[{Name=Michelle,Type=Face,"
                              + "Area={X=0.2,Y=0.3,W=0.1,H=0.12,Unit=normalized}}]}")
            let foreign = try XCTUnwrap(try ExiftoolReading(sidecar).region(named: "Michelle"))

            _ = try await service.services.xmp.run(XMPWriteRequest())
            var reading = try ExiftoolReading(sidecar)
            XCTAssertEqual(reading.all["Title"] as? String, "Inauguration")
            XCTAssertEqual(reading.all["Rating"] as? Int, 4)
            XCTAssertEqual(reading.subject, ["Holiday", "Barack Obama"])
            XCTAssertEqual(reading.regions.map { $0["Name"] as? String }, ["Michelle", "Barack Obama"])
            XCTAssertEqual(NSDictionary(dictionary: try XCTUnwrap(reading.region(named: "Michelle"))), NSDictionary(dictionary: foreign),
                           "the foreign region untouched")

            try await rename(obama, "Barack H. Obama", service)
            _ = try await service.services.xmp.run(XMPWriteRequest())
            reading = try ExiftoolReading(sidecar)
            XCTAssertEqual(reading.regions.map { $0["Name"] as? String }, ["Michelle", "Barack H. Obama"], "one region per face")
            XCTAssertEqual(reading.subject, ["Holiday", "Barack H. Obama"], "the old name's keyword removed, the user's kept")
            XCTAssertEqual(reading.hierarchical, ["People|Barack H. Obama"])
            XCTAssertEqual(reading.tags, ["People/Barack H. Obama"])
            XCTAssertEqual(reading.all["Title"] as? String, "Inauguration")
        }
    }

    /// A person hidden after a write loses the regions and keywords photo-sorter wrote for them (the user's stay), and
    /// the sidecar of a photo without named faces that photo-sorter never wrote to is left byte for byte.
    func testHiddenPersonsRegionsAreTakenBackAndUntouchedSidecarsLeftAlone() async throws {
        try await TestService.run(flavor) { service in
            let (folder, obama, _) = try await makeLibrary(service)
            defer { folder.delete() }
            try Self.tool("exiftool", "-q", "-o", folder.path("biden.jpg.xmp"), "-XMP-dc:Title=Not ours", "-XMP-dc:Subject=Holiday")
            let foreign = try Self.digest(folder.path("biden.jpg.xmp"))
            try Self.tool("exiftool", "-q", "-o", folder.path("obama0.jpg.xmp"), "-XMP-dc:Subject=Holiday")
            _ = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(try ExiftoolReading(folder.path("obama0.jpg.xmp")).subject, ["Holiday", "Barack Obama"])

            let hidden = try await service.request(.PATCH, "/person/\(obama)", json: PersonUpdate(hidden: true))
            XCTAssertEqual(hidden.status, .ok, hidden.reason)
            let result = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(result.written, 3, "the three Obama sidecars")
            XCTAssertEqual(result.regions, 0)
            for n in 0..<3 {
                let reading = try ExiftoolReading(folder.path("obama\(n).jpg.xmp"))
                XCTAssertEqual(reading.regions.count, 0)
                XCTAssertEqual(reading.subject, n == 0 ? ["Holiday"] : [])
                XCTAssertEqual(reading.hierarchical, [])
                XCTAssertNil(reading.all["Keywords"], "photo-sorter's record is gone too")
            }
            XCTAssertEqual(try Self.digest(folder.path("biden.jpg.xmp")), foreign, "never rewritten, not even reformatted")
        }
    }

    /// A new sidecar is `photo.jpg.xmp`, or `photo.xmp` with `sidecar_name` basename; an existing `photo.xmp` is used
    /// whatever the option.
    func testSidecarNameChoosesTheNewFileAndAnExistingOneIsUsed() async throws {
        try await TestService.run(flavor) { service in
            let (folder, _, _) = try await makeLibrary(service)
            defer { folder.delete() }
            try Self.tool("exiftool", "-q", "-o", folder.path("obama1.xmp"), "-XMP-dc:Title=Lightroom's")
            _ = try await service.services.xmp.run(XMPWriteRequest(sidecarName: .basename))
            XCTAssertEqual(Set(folder.files.filter { $0.hasSuffix(".xmp") }),
                           [folder.path("obama0.xmp"), folder.path("obama1.xmp"), folder.path("obama2.xmp")])
            try FileManager.default.removeItem(atPath: folder.path("obama0.xmp"))
            _ = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path("obama0.jpg.xmp")))
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path("obama1.jpg.xmp")), "the existing photo.xmp is used")
            XCTAssertEqual(try ExiftoolReading(folder.path("obama1.xmp")).all["Title"] as? String, "Lightroom's")
        }
    }

    /// A folder that cannot take a file (its path now runs through a regular file, which stops root too) and a
    /// sidecar that is not XMP are each reported with the reason; the other sidecars are written, the bad one is left.
    func testUnwritableSidecarIsReportedAndTheOthersAreWritten() async throws {
        try await TestService.run(flavor) { service in
            let (folder, _, _) = try await makeLibrary(service, layout: ["obama0": "gone/obama0.jpg"])
            defer { folder.delete() }
            try folder.move("gone", to: "elsewhere")
            try Data("not a folder".utf8).write(to: folder.url.appendingPathComponent("gone"))
            let garbled = folder.path("obama1.jpg.xmp")
            try Data("<x:xmpmeta><rdf:RDF><unclosed".utf8).write(to: URL(fileURLWithPath: garbled))

            let result = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(result.failed, 2)
            XCTAssertEqual(result.written, 1)
            let reasons = Dictionary(uniqueKeysWithValues: result.failures.map { ($0.sidecar, $0.reason) })
            XCTAssertTrue(reasons[folder.path("gone/obama0.jpg.xmp")]?.contains("cannot write the sidecar: Not a directory") == true, "\(reasons)")
            XCTAssertTrue(reasons[garbled]?.contains("cannot be read: not a valid XMP packet") == true, "\(reasons)")
            XCTAssertEqual(String(decoding: try Data(contentsOf: URL(fileURLWithPath: garbled)), as: UTF8.self), "<x:xmpmeta><rdf:RDF><unclosed")
            XCTAssertEqual(try ExiftoolReading(folder.path("obama2.jpg.xmp")).subject, ["Barack Obama"])
        }
    }

    /// Regions are relative to the photo as displayed. A JPEG with EXIF orientation 6 (displayed turned a quarter
    /// clockwise), whose face the ML service reports on the displayed photo, gets `AppliedToDimensions` = the displayed
    /// size and the region where the face is when displayed; a sideways scan photo-sorter turned itself
    /// (`quarter_turns` 1) gets its region on the photo as stored and displayed.
    func testRegionsFollowTheDisplayedPhotoForExifOrientationAndQuarterTurns() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            let folder = try Folder("xmp-orientation")
            defer { folder.delete() }
            let fixture = "face_recognition_examples/obama/obama.jpg"
            try folder.add(fixture, as: "oriented.jpg")
            try folder.add(fixture, as: "scan.jpg")
            try Self.tool("exiftool", "-q", "-overwrite_original", "-Orientation#=6", folder.path("oriented.jpg"))
            XCTAssertEqual(try Self.tool("exiftool", "-s3", "-n", "-Orientation", folder.path("oriented.jpg")), "6\n")
            await service.services.ingest.waitForScan(try await service.ingest(folder.url))
            // Stored pixels 910 × 1137, face box in them.
            let (width, height) = (910, 1137)
            let face = try XCTUnwrap(EmbeddingFixture.shared.photo(fixture)?.faces.first)
            let stored = face.bbox
            // Orientation 6 displays the stored pixels turned clockwise: (x, y) → (height - y, x), 1137 × 910.
            let displayed = BoundingBox(x1: height - stored.y2, y1: stored.x1, x2: height - stored.y1, y2: stored.x2)
            // photo-sorter turned the scan counter-clockwise: (x, y) → (y, width - x), 1137 × 910.
            let turned = BoundingBox(x1: stored.y1, y1: width - stored.x2, x2: stored.y2, y2: width - stored.x1)
            for (name, box, turns) in [("oriented.jpg", displayed, 0), ("scan.jpg", turned, 1)] {
                let stored = try await service.photo(path: folder.path(name))
                let photo = try XCTUnwrap(stored)
                var body = try JSONSerialization.jsonObject(with: FakeMLService.callback(
                    photoID: photo.photoID, callbackID: name, faces: [face])) as! [String: Any]
                body["width"] = height
                body["height"] = width
                body["quarter_turns"] = turns
                body["detections"] = [["bbox": box.array, "embedding": face.base64, "confidence": 0.99]]
                let reply = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: body))
                XCTAssertEqual(reply.status, .ok, reply.reason)
            }
            let scanPhoto = try await service.photo(path: folder.path("scan.jpg"))
            let person = try XCTUnwrap(scanPhoto?.personIDs.first)
            try await rename(person, "Barack Obama", service)
            let result = try await service.services.xmp.run(XMPWriteRequest())
            XCTAssertEqual(result.written, 2, "\(result.failures)")

            let oriented = try ExiftoolReading(folder.path("oriented.jpg.xmp"))
            XCTAssertEqual(oriented.width, height, "displayed width = stored height")
            XCTAssertEqual(oriented.height, width)
            let area = try XCTUnwrap(oriented.region(named: "Barack Obama")?["Area"] as? [String: Any])
            let (centreX, centreY) = (Double(stored.x1 + stored.x2) / 2, Double(stored.y1 + stored.y2) / 2)
            XCTAssertEqual(area["X"] as? Double ?? -1, (Double(height) - centreY) / Double(height), accuracy: 1e-6)
            XCTAssertEqual(area["Y"] as? Double ?? -1, centreX / Double(width), accuracy: 1e-6)
            XCTAssertEqual(area["W"] as? Double ?? -1, Double(stored.y2 - stored.y1) / Double(height), accuracy: 1e-6)
            XCTAssertEqual(area["H"] as? Double ?? -1, Double(stored.x2 - stored.x1) / Double(width), accuracy: 1e-6)

            let scan = try ExiftoolReading(folder.path("scan.jpg.xmp"))
            XCTAssertEqual(scan.width, width, "the photo as stored and displayed")
            XCTAssertEqual(scan.height, height)
            let scanArea = try XCTUnwrap(scan.region(named: "Barack Obama")?["Area"] as? [String: Any])
            XCTAssertEqual(scanArea["X"] as? Double ?? -1, centreX / Double(width), accuracy: 1e-6)
            XCTAssertEqual(scanArea["Y"] as? Double ?? -1, centreY / Double(height), accuracy: 1e-6)
            XCTAssertEqual(scanArea["W"] as? Double ?? -1, Double(stored.x2 - stored.x1) / Double(width), accuracy: 1e-6)
            XCTAssertEqual(scanArea["H"] as? Double ?? -1, Double(stored.y2 - stored.y1) / Double(height), accuracy: 1e-6)
        }
    }

    /// POST /xmp/write answers 202 with a job that GET /xmp/write/{id} follows to COMPLETED with its counts: a dry run
    /// writes nothing, `person_id` (a merged id follows its redirect) narrows the photos, an unknown person is a 404.
    func testPostXmpWriteRunsAJobThatGetFollows() async throws {
        try await TestService.run(flavor) { service in
            let (folder, obama, biden) = try await makeLibrary(service)
            defer { folder.delete() }
            try await rename(biden, "Joe Biden", service)

            let dryRun = try await writeJob(#"{"dry_run": true}"#, service)
            XCTAssertEqual(dryRun.result.written, 4)
            XCTAssertEqual(dryRun.result.changed.count, 4)
            XCTAssertEqual(folder.files.filter { $0.hasSuffix(".xmp") }, [], "a dry run writes nothing")

            let onlyBiden = try await writeJob(#"{"person_id": \#(biden), "sidecar_name": "ext"}"#, service)
            XCTAssertEqual(onlyBiden.result.written, 1)
            XCTAssertEqual(folder.files.filter { $0.hasSuffix(".xmp") }, [folder.path("biden.jpg.xmp")])

            let merged = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [obama, biden], into: obama))
            XCTAssertEqual(merged.status, .ok, merged.reason)
            let viaRedirect = try await writeJob(#"{"person_id": \#(biden)}"#, service)
            XCTAssertEqual(viaRedirect.result.photos, 4, "the survivor's photos")
            XCTAssertEqual(try ExiftoolReading(folder.path("biden.jpg.xmp")).subject, ["Barack Obama"], "Joe Biden's keywords taken back")

            let unknownPerson = try await service.request(.POST, "/xmp/write", body: Data(#"{"person_id": 999999}"#.utf8))
            XCTAssertEqual(unknownPerson.status, .notFound, unknownPerson.reason)
            let badName = try await service.request(.POST, "/xmp/write", body: Data(#"{"sidecar_name": "side"}"#.utf8))
            XCTAssertEqual(badName.status, .badRequest, badName.reason)
            let unknownJob = try await service.request(.GET, "/xmp/write/no-such-job")
            XCTAssertEqual(unknownJob.status, .notFound, unknownJob.reason)
        }
    }

    /// POST /xmp/write with `body`, then GET /xmp/write/{id} until the job is done; it must complete.
    func writeJob(_ body: String, _ service: TestService) async throws -> XMPWriteStatus {
        let started = try await service.request(.POST, "/xmp/write", body: Data(body.utf8))
        XCTAssertEqual(started.status, .accepted, started.reason)
        let jobID = try started.decode(XMPWriteStatus.self).jobID
        for _ in 0..<600 {
            let status = try await service.request(.GET, "/xmp/write/\(jobID)").decode(XMPWriteStatus.self)
            if status.done {
                XCTAssertEqual(status.status, "COMPLETED", status.error ?? "")
                return status
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestService.UnexpectedReply(description: "xmp write \(jobID) did not finish in 60 s")
    }
}

final class XMPWriteTestsOnPostgres: XMPWriteTests {
    override class var flavor: DatabaseFlavor { .postgres }
    override func testRegionsAndNamesAreReadBackExactlyByExiftoolAndExiv2() async throws {
        try await super.testRegionsAndNamesAreReadBackExactlyByExiftoolAndExiv2()
    }
}
