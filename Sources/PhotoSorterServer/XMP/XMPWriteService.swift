import Foundation
import Logging
import NIOConcurrencyHelpers
import PhotoSorterCore
import SQLKit
import Vapor

/// POST /xmp/write's body, and the options of `photo-sorter xmp write`. Every field is optional.
public struct XMPWriteRequest: Content, Sendable {
    /// Reports what would change; writes nothing.
    public var dryRun: Bool
    /// Only the photos of this person (a merged id: its survivor). Those photos still get every named face.
    public var personID: Int64?
    /// The sidecar to create where a photo has none.
    public var sidecarName: SidecarNaming

    public init(dryRun: Bool = false, personID: Int64? = nil, sidecarName: SidecarNaming = .ext) {
        self.dryRun = dryRun
        self.personID = personID
        self.sidecarName = sidecarName
    }

    enum CodingKeys: String, CodingKey {
        case dryRun = "dry_run"
        case personID = "person_id"
        case sidecarName = "sidecar_name"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dryRun: try c.decodeIfPresent(Bool.self, forKey: .dryRun) ?? false,
                  personID: try c.decodeIfPresent(Int64.self, forKey: .personID),
                  sidecarName: try c.decodeIfPresent(SidecarNaming.self, forKey: .sidecarName) ?? .ext)
    }
}

/// A sidecar that could not be written, and why.
public struct XMPWriteFailure: Content, Sendable, Equatable {
    public var photoID: Int64
    public var path: String
    public var sidecar: String
    public var reason: String

    enum CodingKeys: String, CodingKey {
        case path, sidecar, reason
        case photoID = "photo_id"
    }
}

/// What an `xmp write` did (with `dry_run`: would do). While its job runs, the counts so far.
public struct XMPWriteResult: Content, Sendable, Equatable {
    public var dryRun: Bool
    /// Photos with a named face, plus photos without one whose existing sidecar was checked for photo-sorter's regions.
    public var photos = 0
    /// Sidecars created or changed.
    public var written = 0
    /// Sidecars that already said exactly this (left untouched).
    public var unchanged = 0
    public var failed = 0
    /// Face regions in the sidecars written.
    public var regions = 0
    /// The first `changedListed` sidecars written, by photo id.
    public var changed: [String] = []
    /// Every sidecar that could not be written.
    public var failures: [XMPWriteFailure] = []

    static let changedListed = 100

    enum CodingKeys: String, CodingKey {
        case photos, written, unchanged, failed, regions, changed, failures
        case dryRun = "dry_run"
    }

    /// "xmp write: 120 photos considered, 80 sidecars written, 38 unchanged, 2 failed"
    public var summaryLine: String {
        "xmp write\(dryRun ? " (dry run)" : ""): \(photos) photos considered, \(written) sidecars \(dryRun ? "would be written" : "written"), "
            + "\(unchanged) unchanged, \(failed) failed"
    }
}

/// GET /xmp/write/{id}, and the answer of POST /xmp/write.
public struct XMPWriteStatus: Content, Sendable {
    public var jobID: String
    /// RUNNING, then COMPLETED or FAILED (the database could not be read; `error` says why).
    public var status: String
    public var done: Bool
    public var result: XMPWriteResult
    public var error: String?
    public var createdAt: Int64
    public var finishedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case status, done, result, error
        case jobID = "job_id"
        case createdAt = "created_at"
        case finishedAt = "finished_at"
    }
}

/// Writes the names of the library's faces into the photos' XMP sidecars (`FaceRegionsXMP`), for `photo-sorter xmp
/// write` (`run`) and POST /xmp/write (`start`, a job of this instance, kept in memory: the write is idempotent, so
/// a job lost with its instance is simply run again).
///
/// Every photo that is not MISSING and shows a named, visible person is written; without `person_id` also every
/// photo whose sidecar holds regions photo-sorter wrote before that no longer match a named face (they are removed).
/// Only sidecars are written, never a photo: an existing one is parsed, edited and serialised again, and replaced
/// atomically (a temporary file in its folder, renamed over it) only when its content changes. A sidecar that
/// cannot be read, parsed or written is a failure with its reason, and the others are still written.
public final class XMPWriteService: Sendable {
    private let database: PhotoSorterDatabase
    private let logger: Logger
    private let jobs = NIOLockedValueBox<[String: XMPWriteStatus]>([:])
    private let running = NIOLockedValueBox<(id: String, task: Task<Void, Never>)?>(nil)

    /// Photos read from the database at a time.
    private static let pageSize = 500
    /// Jobs kept for GET /xmp/write/{id}, the newest.
    private static let jobsKept = 20
    /// A sidecar larger than this is refused unread (XMP packets are kilobytes; a huge one is damage or an attack).
    static let largestSidecar = 16 * 1024 * 1024

    init(database: PhotoSorterDatabase, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Writes every sidecar to the end.
    public func run(_ request: XMPWriteRequest) async throws -> XMPWriteResult {
        try await write(request, person: try await person(request.personID)) { _ in }
    }

    /// Starts a write job in the background; 409 while another runs here.
    public func start(_ request: XMPWriteRequest) async throws -> XMPWriteStatus {
        let person = try await person(request.personID)
        let jobID = UUID().uuidString
        let status = XMPWriteStatus(jobID: jobID, status: "RUNNING", done: false, result: XMPWriteResult(dryRun: request.dryRun),
                                    error: nil, createdAt: nowMs(), finishedAt: nil)
        try running.withLockedValue { current in
            if let current { throw PhotoSorterError.conflict("xmp write job \(current.id) is running; follow it at /xmp/write/\(current.id)") }
            jobs.withLockedValue { jobs in
                jobs[jobID] = status
                for old in jobs.values.sorted(by: { $0.createdAt > $1.createdAt }).dropFirst(Self.jobsKept) { jobs[old.jobID] = nil }
            }
            current = (jobID, Task {
                do {
                    let result = try await self.write(request, person: person) { progress in self.update(jobID) { $0.result = progress } }
                    self.update(jobID) { $0.result = result; $0.status = "COMPLETED" }
                } catch {
                    self.logger.error("xmp write failed", metadata: ["job_id": "\(jobID)", "error": "\(error)"])
                    self.update(jobID) { $0.status = "FAILED"; $0.error = "\(error)" }
                }
                self.update(jobID) { $0.done = true; $0.finishedAt = nowMs() }
                self.running.withLockedValue { $0 = nil }
            })
        }
        return status
    }

    public func status(_ jobID: String) throws -> XMPWriteStatus {
        guard let status = jobs.withLockedValue({ $0[jobID] }) else { throw PhotoSorterError.xmpWriteJobNotFound(jobID) }
        return status
    }

    /// Waits for a background job of this instance (shutdown, tests).
    func waitForBackgroundJob() async {
        await running.withLockedValue { $0?.task }?.value
    }

    private func update(_ jobID: String, _ change: (inout XMPWriteStatus) -> Void) {
        jobs.withLockedValue { jobs in if jobs[jobID] != nil { change(&jobs[jobID]!) } }
    }

    /// The live, visible, named person `id` stands for (its survivor when merged): 404 when missing, 409 when hidden
    /// or unnamed (it has no name to write).
    private func person(_ id: Int64?) async throws -> Int64? {
        guard let id else { return nil }
        let current = try await PersonsTable.current([id], on: database.sql)[id] ?? id
        guard let row = try await database.sql.raw("SELECT hidden, display_name FROM persons WHERE id = \(bind: current)").first() else {
            throw PhotoSorterError.personNotFound(id)
        }
        if try row.decode(column: "hidden", as: Bool.self) { throw PhotoSorterError.conflict("person \(current) is hidden; unhide it to write its name") }
        if try row.decode(column: "display_name", as: String?.self) == nil {
            throw PhotoSorterError.conflict("person \(current) has no name; name it to write it")
        }
        return current
    }

    private struct PhotoRow {
        let id: Int64
        let path: String
        let width: Int?
        let height: Int?
        let quarterTurns: Int
    }

    private func write(_ request: XMPWriteRequest, person: Int64?, progress: (XMPWriteResult) -> Void) async throws -> XMPWriteResult {
        var result = XMPWriteResult(dryRun: request.dryRun)
        var after: Int64 = 0
        while true {
            let photos = try await photoPage(after: after, person: person)
            guard let last = photos.last else { break }
            let faces = try await namedFaces(of: photos.map(\.id))
            for photo in photos {
                write(photo, faces: faces[photo.id] ?? [], request: request, clearing: person == nil, into: &result)
            }
            progress(result)
            after = last.id
        }
        logger.info("xmp write finished", metadata: ["summary": "\(result.summaryLine)"])
        return result
    }

    /// The next photos by id that are not MISSING (with `person`: only those showing that person).
    private func photoPage(after: Int64, person: Int64?) async throws -> [PhotoRow] {
        let ofPerson: SQLQueryString = person.map { "AND id IN (SELECT photo_id FROM embeddings WHERE person_id = \(bind: $0))" } ?? ""
        return try await database.sql.raw("""
            SELECT id, path, width, height, quarter_turns FROM photos
            WHERE id > \(bind: after) AND status <> \(bind: PhotoStatus.missing.rawValue) \(ofPerson)
            ORDER BY id LIMIT \(unsafeRaw: String(Self.pageSize))
            """).all().map { row in
            PhotoRow(id: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                     width: try row.decode(column: "width", as: Int?.self), height: try row.decode(column: "height", as: Int?.self),
                     quarterTurns: try row.decode(column: "quarter_turns", as: Int?.self) ?? 0)
        }
    }

    /// The faces of `photos` whose person is named, visible and not merged away, by photo, in face order.
    private func namedFaces(of photos: [Int64]) async throws -> [Int64: [NamedFace]] {
        try await database.sql.raw("""
            SELECT e.photo_id, e.id, e.bbox_x1, e.bbox_y1, e.bbox_x2, e.bbox_y2, p.display_name
            FROM embeddings e JOIN persons p ON p.id = e.person_id
            WHERE e.photo_id IN (\(binds: photos)) AND p.display_name IS NOT NULL AND p.hidden = \(bind: false) AND p.merged_into IS NULL
            ORDER BY e.photo_id, e.face_index
            """).all().reduce(into: [:]) { faces, row in
            faces[try row.decode(column: "photo_id", as: Int64.self), default: []].append(NamedFace(
                faceID: try row.decode(column: "id", as: Int64.self), box: try BoundingBox(row: row),
                name: try row.decode(column: "display_name", as: String.self)))
        }
    }

    /// One photo's sidecar. A photo without named faces is only visited when `clearing` and it has a sidecar.
    private func write(_ photo: PhotoRow, faces: [NamedFace], request: XMPWriteRequest, clearing: Bool, into result: inout XMPWriteResult) {
        let sidecar = request.sidecarName.sidecar(of: photo.path) { Sidecar.exists($0) }
        guard !faces.isEmpty || (clearing && Sidecar.exists(sidecar)) else { return }
        result.photos += 1
        do {
            guard faces.isEmpty || (photo.width != nil && photo.height != nil) else { throw SidecarError.noSize }
            let wanted = SidecarFaces(frameWidth: photo.width ?? 0, frameHeight: photo.height ?? 0, quarterTurns: photo.quarterTurns, faces: faces)
            let existing = try Sidecar.read(sidecar)
            let packet: XMPPacket
            if let existing {
                do throws(XMPError) { packet = try XMPPacket(parsing: existing) } catch { throw SidecarError.unreadable(error.description) }
            } else {
                packet = try XMPPacket()
            }
            // A sidecar photo-sorter never wrote to is not rewritten for a photo without named faces (not even reformatted).
            if faces.isEmpty && !FaceRegionsXMP.holdsOwnMarks(packet) {
                result.unchanged += 1
                return
            }
            try FaceRegionsXMP.apply(wanted, to: packet)
            let content = try packet.serialised()
            guard content != existing else {
                result.unchanged += 1
                return
            }
            if !request.dryRun { try Sidecar.replace(sidecar, with: content) }
            result.written += 1
            result.regions += wanted.regions.count
            if result.changed.count < XMPWriteResult.changedListed { result.changed.append(sidecar) }
        } catch {
            result.failed += 1
            result.failures.append(XMPWriteFailure(photoID: photo.id, path: photo.path, sidecar: sidecar, reason: "\(error)"))
        }
    }
}
