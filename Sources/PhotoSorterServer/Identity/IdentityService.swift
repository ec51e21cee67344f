import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import PhotoSorterCore
import SQLKit

/// The authoritative write path for ML results: validates a callback, resolves its faces to persons
/// against the in-memory `IdentityIndex`, and stores everything in one transaction.
///
/// One face model per database: results are checked against the model of the stored faces (`FaceModel`), and
/// the identity thresholds are that model's (`ServiceConfig.identityPolicy(for:)`). While a reprocess job runs,
/// results of its model are staged instead (`ReprocessService`).
///
/// Commits are serialised: in process by an async lock, across instances by a PostgreSQL transaction-level
/// advisory lock. Inside the lock the index first catches up with embeddings other instances committed
/// (ids are allocated inside the lock, so "id greater than the last seen" is complete), so a person
/// created a moment ago — even one the ML service's dump has not seen — is matched, never duplicated.
/// Faces that move between persons (corrections, re-clusters) or disappear (a changed file) are appended to the
/// change log `identity_changes`, which every instance replays at the same point; bulk changes (a reprocess, a
/// large re-cluster) bump `identity_generation` instead, and an instance that finds another generation than its
/// own reloads the whole index first.
public final class IdentityService: Sendable {
    struct State {
        var index = IdentityIndex()
        var lastEmbeddingID: Int64 = 0
        /// Model of the stored faces; nil while the database holds none.
        var model: FaceModel?
        /// The `identity_generation` this index reflects.
        var generation: Int64 = 0
        /// The last `identity_changes` entry this index reflects.
        var lastChangeSeq: Int64 = 0
        /// Names this index's life (a new one at every full load): person-dump change sequences are only
        /// comparable within one epoch.
        var dumpEpoch = UUID().uuidString
        /// Counts changes to looks (their representatives or owners) since the last load; `lookVersions` holds, per
        /// look, the count at its last change, so the person dump can serve what changed since a sequence number.
        var dumpSeq: Int64 = 0
        var lookVersions: [Int64: Int64] = [:]

        /// Records that `look`'s faces (so its representative) or its owner changed.
        mutating func touch(_ look: Int64) {
            dumpSeq += 1
            lookVersions[look] = dumpSeq
        }

        /// A face moved between persons and looks (nil: unsorted, or gone), as a correction, a re-cluster or the
        /// change log says.
        mutating func apply(_ face: Embedding, from: (person: Int64, look: Int64?)?, to: (person: Int64, look: Int64?)?) {
            switch (from, to) {
            case let (from?, to?): index.move(face, from: from, to: to)
            case let (from?, nil): index.remove(face, from: from.person, look: from.look)
            case let (nil, to?): index.add(face, to: to.person, look: to.look)
            case (nil, nil): return
            }
            if let from { touch(from.look ?? from.person) }
            if let to { touch(to.look ?? to.person) }
        }
    }

    /// Key of the advisory lock that serialises identity commits across instances.
    static let advisoryLockKey: Int64 = 0x5048_4F54_4F53   // "PHOTOS"

    let database: PhotoSorterDatabase
    let config: ServiceConfig
    let logger: Logger
    let lock = AsyncLock()
    let state = NIOLockedValueBox(State())
    /// Whether a snapshot is being written (one at a time).
    let snapshotWriter = NIOLockedValueBox(false)
    private let facesCounter = Counter(label: "photo_sorter_faces_total")
    private let personsCreatedCounter = Counter(label: "photo_sorter_persons_created_total")
    private let hintCounter = Counter(label: "photo_sorter_ml_hints_total", dimensions: [("outcome", "confirmed")])
    private let hintOverriddenCounter = Counter(label: "photo_sorter_ml_hints_total", dimensions: [("outcome", "overridden")])
    private let callbacksCounter = Counter(label: "photo_sorter_callbacks_total")

    init(database: PhotoSorterDatabase, config: ServiceConfig, logger: Logger) {
        self.database = database
        self.config = config
        self.logger = logger
    }

    public var personCount: Int { state.withLockedValue { $0.index.personCount } }

    /// The model of the stored faces; nil while there are none.
    public var model: FaceModel? { state.withLockedValue { $0.model } }

    /// Loads every stored face into the index (at start-up, and after a reprocess replaced them).
    func load() async throws {
        try await lock.withLock { try await self.reload() }
    }

    /// `load` for a caller that holds the lock; reads through `db` (a transaction sees its own writes).
    ///
    /// From the latest snapshot of this generation when there is one (see `IdentityService+Snapshot`), else from
    /// every stored face. Faces are read a page at a time and summed per person (`IdentityIndex.Builder`), so memory
    /// holds the index and one page, never every embedding (a million 512-d faces are 2 GiB). The new index is
    /// built aside and swapped in at the end: readers see the old one until then.
    func reload(on db: (any SQLDatabase)? = nil) async throws {
        let db = db ?? database.sql
        let started = ContinuousClock.now
        let generation = try await Self.generation(on: db)
        let lastChangeSeq = try await IdentityLog.lastChangeSeq(on: db)
        let model = try await storedModel(on: db)
        var builder = IdentityIndex.Builder(dimension: model?.dimension)
        let snapshot = try await IdentityLog.latestSnapshot(of: generation, on: db)
        var loaded = State(model: model, generation: generation, lastChangeSeq: snapshot?.lastChangeSeq ?? lastChangeSeq)
        if let snapshot {
            try await readSnapshot(snapshot, into: &builder, on: db)
            loaded.lastEmbeddingID = snapshot.lastEmbeddingID
        } else {
            while true {
                let page = try await embeddings(after: loaded.lastEmbeddingID, limit: Self.loadPageSize, on: db)
                for update in page { if let person = update.person { builder.add(update.face, to: person, look: update.look) } }
                guard let last = page.last else { break }
                loaded.lastEmbeddingID = last.embeddingID
            }
        }
        let readFaces = builder.faceCount
        loaded.index = builder.build()
        var caughtUp = 0
        if let snapshot {
            // The catch-up of another instance's commits: first the moves and removals logged after the snapshot
            // (they concern faces it holds), then the faces stored after it, with their current persons.
            let changes = try await IdentityLog.changes(after: snapshot.lastChangeSeq, on: db)
            CatchUp(updates: [], changes: changes).apply(to: &loaded)
            caughtUp = changes.count
            while true {
                let page = try await embeddings(after: loaded.lastEmbeddingID, limit: Self.loadPageSize, on: db)
                if page.isEmpty { break }
                CatchUp(updates: page, changes: []).apply(to: &loaded)
                caughtUp += page.count
            }
        }
        // A fresh epoch: dump readers start over with a full listing, so nothing needs a version yet.
        loaded.lookVersions = [:]
        loaded.dumpSeq = 0
        state.withLockedValue { $0 = loaded }
        logger.info("identity index loaded", metadata: [
            "persons": "\(personCount)", "faces": "\(readFaces)", "from_snapshot": "\(snapshot.map { "\($0.id)" } ?? "none")",
            "caught_up": "\(caughtUp)", "model": "\(model?.description ?? "none yet")", "took": "\(ContinuousClock.now - started)"])
    }

    /// Faces (or snapshot persons) read per query while loading the index: 20,000 512-d vectors are some 40 MiB.
    static let loadPageSize = 20_000

    /// The model of the stored faces: every embedding row carries its `model_version`, all of one embedder.
    func storedModel(on db: any SQLDatabase) async throws -> FaceModel? {
        guard let row = try await db.raw("SELECT model_version FROM embeddings ORDER BY id LIMIT 1").first() else { return nil }
        let version = try row.decode(column: "model_version", as: String.self)
        guard let model = FaceModel.of(modelVersion: version) else {
            throw PhotoSorterError.conflict("the database holds faces of an unknown model \"\(version)\"; this version knows "
                + FaceModel.all.map(\.embedder).joined(separator: ", "))
        }
        return model
    }

    /// The model named by `payload`'s `model_version`. Required with faces; nil for a result without faces that
    /// names none or an unknown one.
    private func resultModel(of payload: CallbackPayload, faces: [Embedding]) throws -> FaceModel? {
        guard let version = payload.meta?.modelVersion else {
            if faces.isEmpty { return nil }
            throw PhotoSorterError.invalidRequest("meta.model_version is required with detections")
        }
        guard let model = FaceModel.of(modelVersion: version) else {
            if faces.isEmpty { return nil }
            throw PhotoSorterError.invalidRequest("unknown face model \"\(version)\"; this service knows "
                + FaceModel.all.map(\.embedder).joined(separator: ", "))
        }
        return model
    }

    /// Refuses faces that cannot be compared with the stored ones (409: the request is fine, the database is not
    /// of that model), and faces whose length does not match their own model (422).
    private func check(_ faces: [Embedding], of model: FaceModel?, version: String?, against stored: FaceModel?) throws {
        guard let model, !faces.isEmpty else { return }
        if let stored, stored != model {
            throw PhotoSorterError.conflict("the database holds faces of model \(stored.name) (\(stored.embedder)); this result is from "
                + "\(version ?? model.embedder). Faces of two models are never compared: run the ML service with "
                + "PHOTO_SORTER_ML_MODEL=\(stored.name), or switch the library with `photo-sorter reprocess --model \(model.name)`")
        }
        if let wrong = faces.first(where: { $0.dimension != model.dimension }) {
            let message = "\(model.embedder) embeddings have \(model.dimension) values; this result has \(wrong.dimension)"
            throw stored == nil ? PhotoSorterError.invalidRequest(message) : PhotoSorterError.conflict(message)
        }
    }

    /// Validates and stores one callback. Same callback key twice returns the first answer and writes nothing.
    func commit(_ payload: CallbackPayload, key: String) async throws -> CallbackResponse {
        guard payload.status == .processed || payload.status == .failed else {
            throw PhotoSorterError.invalidRequest("status must be PROCESSED or FAILED, got \(payload.status.rawValue)")
        }
        let faces: [Embedding]
        do {
            faces = try payload.detections.map { try EmbeddingCodec.decode(base64: $0.embedding) }
        } catch {
            throw PhotoSorterError.invalidRequest("invalid detection: \(error)")
        }
        if payload.status == .failed, !payload.detections.isEmpty {
            throw PhotoSorterError.invalidRequest("a FAILED callback cannot carry detections")
        }
        let model = try resultModel(of: payload, faces: faces)
        callbacksCounter.increment()
        return try await lock.withLock {
            let (response, caughtUp, storedModel) = try await self.database.transaction { tx in
                var (snapshot, caughtUp) = try await self.catchUp(on: tx)
                let index = snapshot.index, stored = snapshot.model
                if payload.status == .processed, let job = try await ReprocessService.runningJob(on: tx) {
                    // During a reprocess only the job's model is accepted (a photo without faces from any model).
                    try self.check(faces, of: model, version: payload.meta?.modelVersion, against: job.model)
                    return (try await ReprocessService.stage(payload, faces: faces, job: job, key: key, on: tx), caughtUp, stored)
                }
                try self.check(faces, of: model, version: payload.meta?.modelVersion, against: stored)
                let response = try await self.store(payload, faces: faces, key: key, model: model, index: index, on: tx,
                                                    updates: &caughtUp.updates)
                return (response, caughtUp, stored ?? (faces.isEmpty ? nil : model))
            }
            self.apply(caughtUp, model: storedModel)
            return response
        }
    }

    /// Takes the cross-instance lock and brings this instance up to date inside `tx`: the index as it was plus the
    /// faces other instances committed and the moves and removals they logged since (also returned, to `apply`
    /// after the commit), or, when persons were changed in bulk elsewhere (another generation), the index reloaded
    /// from `tx`. Call under `lock`.
    func catchUp(on tx: any SQLDatabase) async throws -> (State, CatchUp) {
        try await lockAcrossInstances(tx)
        var snapshot = state.withLockedValue { $0 }
        // One round trip says whether anything is new (a callback on PostgreSQL is a dozen round trips; three
        // were this catch-up's, and almost always found nothing).
        let marks = try await tx.raw("""
            SELECT (SELECT generation FROM identity_generation WHERE id = 1) AS generation,
                (SELECT MAX(id) FROM embeddings) AS last_face, (SELECT MAX(seq) FROM identity_changes) AS last_change
            """).first()!
        if try marks.decode(column: "generation", as: Int64?.self) ?? 0 != snapshot.generation {
            try await reload(on: tx)
            return (state.withLockedValue { $0 }, CatchUp(updates: [], changes: []))
        }
        let newFaces = try marks.decode(column: "last_face", as: Int64?.self) ?? 0 > snapshot.lastEmbeddingID
        let newChanges = try marks.decode(column: "last_change", as: Int64?.self) ?? 0 > snapshot.lastChangeSeq
        let caughtUp = CatchUp(updates: newFaces ? try await embeddings(after: snapshot.lastEmbeddingID, on: tx) : [],
                               changes: newChanges ? try await IdentityLog.changes(after: snapshot.lastChangeSeq, on: tx) : [])
        caughtUp.apply(to: &snapshot)
        if snapshot.model == nil, !caughtUp.updates.isEmpty { snapshot.model = try await storedModel(on: tx) }
        return (snapshot, caughtUp)
    }

    static func generation(on db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT generation FROM identity_generation WHERE id = 1").first()?
            .decode(column: "generation", as: Int64.self) ?? 0
    }

    /// Records that persons changed (other instances reload); returns the new generation.
    static func bumpGeneration(on tx: any SQLDatabase) async throws -> Int64 {
        try await tx.raw("UPDATE identity_generation SET generation = generation + 1 WHERE id = 1").run()
        return try await generation(on: tx)
    }

    /// Serialises identity commits across instances (PostgreSQL; SQLite has one writer anyway).
    func lockAcrossInstances(_ tx: any SQLDatabase) async throws {
        try await Self.lockAcrossInstances(tx, flavor: database.flavor)
    }

    static func lockAcrossInstances(_ tx: any SQLDatabase, flavor: DatabaseFlavor) async throws {
        if flavor == .postgres {
            try await tx.raw("SELECT pg_advisory_xact_lock(\(bind: advisoryLockKey))").run()
        }
    }

    /// A stored face as the index takes it; `look` nil is the person's own, `person` nil an unsorted face (not in
    /// the index).
    struct IndexUpdate: Sendable {
        let embeddingID: Int64
        let person: Int64?
        var look: Int64? = nil
        let face: Embedding
    }

    /// One entry of the change log: a face moved (`to` set) or removed (`to` nil) — from nobody when it was unsorted,
    /// to nobody when it becomes unsorted or goes; looks nil are the persons' own.
    struct IndexChange: Sendable {
        var seq: Int64 = 0
        let embeddingID: Int64
        let from: Int64?
        var fromLook: Int64? = nil
        let to: Int64?
        var toLook: Int64? = nil
        let face: Embedding
    }

    /// What a catch-up read: new faces, then logged changes.
    struct CatchUp: Sendable {
        var updates: [IndexUpdate]
        var changes: [IndexChange]

        /// Adds the new faces, then replays the changes in order. A change to a face the index did not hold before
        /// this catch-up is skipped: a new face arrives with its current person, and a removed one never arrives.
        func apply(to state: inout State) {
            let held = state.lastEmbeddingID
            for update in updates where update.embeddingID > state.lastEmbeddingID {
                if let person = update.person {
                    state.index.add(update.face, to: person, look: update.look)
                    state.touch(update.look ?? person)
                }
                state.lastEmbeddingID = update.embeddingID
            }
            for change in changes where change.seq > state.lastChangeSeq {
                if change.embeddingID <= held {
                    state.apply(change.face, from: change.from.map { ($0, change.fromLook) }, to: change.to.map { ($0, change.toLook) })
                }
                state.lastChangeSeq = change.seq
            }
        }
    }

    func apply(_ caughtUp: CatchUp, model: FaceModel? = nil) {
        state.withLockedValue { state in
            if state.model == nil { state.model = model }
            caughtUp.apply(to: &state)
        }
    }

    /// Stored faces with an id above `id`, in id order (at most `limit`).
    func embeddings(after id: Int64, limit: Int = .max, on db: any SQLDatabase) async throws -> [IndexUpdate] {
        try await db.raw("""
            SELECT id, person_id, look_id, vector FROM embeddings WHERE id > \(bind: id) ORDER BY id LIMIT \(bind: min(limit, Int(Int64.max)))
            """).all().map { row in
            IndexUpdate(embeddingID: try row.decode(column: "id", as: Int64.self),
                        person: try row.decode(column: "person_id", as: Int64?.self), look: try row.decode(column: "look_id", as: Int64?.self),
                        face: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)))
        }
    }

    /// The transactional part of `commit`, run under the lock.
    private func store(_ payload: CallbackPayload, faces: [Embedding], key: String, model: FaceModel?, index: IdentityIndex,
                       on tx: any SQLDatabase, updates: inout [IndexUpdate]) async throws -> CallbackResponse {
        if let remembered = try await IdentityLog.rememberedResponse(for: key, on: tx) { return remembered }
        guard let photo = try await tx.raw("SELECT status, person_ids, modified_at FROM photos WHERE id = \(bind: payload.photoID)").first() else {
            throw PhotoSorterError.photoNotFound(payload.photoID)
        }
        let now = nowMs()
        if try photo.decode(column: "status", as: String.self) == PhotoStatus.missing.rawValue {
            // The file vanished while it was analysed: the photo keeps no analysis, and is analysed again if it returns.
            logger.info("result for a missing photo ignored", metadata: ["photo_id": "\(payload.photoID)", "callback": "\(key)"])
            return CallbackResponse(ok: true, createdPersonIDs: [], personIDs: [])
        }
        if try photo.decode(column: "status", as: String.self) == PhotoStatus.processed.rawValue {
            // Another attempt already delivered this photo's result; keep it and write nothing.
            let stored = try photo.decode(column: "person_ids", as: String?.self) ?? "[]"
            logger.info("duplicate result for processed photo ignored", metadata: ["photo_id": "\(payload.photoID)", "callback": "\(key)"])
            return CallbackResponse(ok: true, createdPersonIDs: [], personIDs: try JSONDecoder().decode([Int64].self, from: Data(stored.utf8)))
        }
        let response: CallbackResponse
        if payload.status == .failed {
            try await PhotosTable.markUnusable(payload, now: now, on: tx)
            response = CallbackResponse(ok: true, createdPersonIDs: [], personIDs: [])
        } else {
            response = try await storeFaces(payload, faces: faces, model: model, index: index, modifiedAtMs: try photo.decode(column: "modified_at", as: Int64.self),
                                            now: now, on: tx, updates: &updates)
        }
        try await IdentityLog.remember(response, key: key, photoID: payload.photoID, on: tx)
        return response
    }

    private func storeFaces(_ payload: CallbackPayload, faces: [Embedding], model: FaceModel?, index: IdentityIndex, modifiedAtMs: Int64, now: Int64,
                            on tx: any SQLDatabase, updates: inout [IndexUpdate]) async throws -> CallbackResponse {
        let resolutions = model.map {
            IdentityResolver(policy: config.identityPolicy(for: $0)).resolveWithRunnerUps(faces, against: index)
        } ?? []
        // A file whose content changed: each new face takes the corrections of the old face it overlaps most.
        let corrections = try await ParkedFacesTable.corrections(ofChanged: payload.photoID, on: tx)
        let replaced = BoundingBox.pairByOverlap(payload.detections.map(\.bbox), with: corrections.map(\.bbox))
            .map { $0.map { corrections[$0] } }
        let correctedPersons = try await PersonsTable.current(Set(corrections.filter(\.confirmed).compactMap(\.person)), on: tx)
        let modelVersion = payload.meta?.modelVersion ?? "unknown"
        var newPersonBySlot: [Int: Int64] = [:]
        var created: [Int64] = []
        var personIDs: [Int64] = []
        var facesPerPerson: [Int64: Int] = [:]
        // A face that is not unsure may start a person, and so may one an XMP region names (its owner named it).
        let foundingSlots = FaceResolution.foundingSlots(of: resolutions) { faceIndex in
            let detection = payload.detections[faceIndex]
            return model?.mayFoundPerson(embeddingNorm: detection.embeddingNorm) != false || detection.xmpName != nil
        }
        for (faceIndex, resolution) in resolutions.enumerated() {
            let person: Int64?
            var look: Int64?
            var similarity: Double?
            let correction = replaced[faceIndex]
            switch resolution.identity {
            case _ where correction?.confirmed == true:
                let corrected = correction!.person!   // a confirmed face has a person
                person = correctedPersons[corrected] ?? corrected
                // The old face's look, which a merge since then made a look of `person`.
                look = correction!.look ?? corrected
            case .existing(let id, let score) where correction?.rejected.contains(id) != true:
                person = id
                look = resolution.look
                similarity = Double(score)
            case .existing:
                // The user said this face is not that person: a person of its own, as a correction would leave it.
                let own = try await PersonsTable.insert(representativePhoto: payload.photoID, now: now, on: tx)
                created.append(own)
                person = own
            case .new(let slot) where !foundingSlots.contains(slot):
                person = nil
            case .new(let slot):
                if let id = newPersonBySlot[slot] {
                    person = id
                } else {
                    let new = try await PersonsTable.insert(representativePhoto: payload.photoID, now: now, on: tx)
                    newPersonBySlot[slot] = new
                    created.append(new)
                    person = new
                }
            }
            let detection = payload.detections[faceIndex]
            if let hint = detection.suggestedPersonID {
                (hint == person ? hintCounter : hintOverriddenCounter).increment()
            }
            let createdPerson = person.map(created.contains) ?? false
            if look == person { look = nil }
            let embeddingID = try await FacesTable.insert(FacesTable.NewFace(
                photoID: payload.photoID, personID: person, lookID: look, faceIndex: faceIndex, embedding: faces[faceIndex], bbox: detection.bbox,
                confidence: detection.confidence ?? 0, similarity: similarity, createdPerson: createdPerson,
                suggestedPersonID: detection.suggestedPersonID, modelVersion: modelVersion, confirmed: correction?.confirmed ?? false,
                namedFromXMP: correction?.confirmed == true && correction?.namedFromXMP == true,
                runnerUpPersonID: resolution.runnerUp?.person, runnerUpSimilarity: resolution.runnerUp.map { Double($0.similarity) },
                embeddingNorm: detection.embeddingNorm),
                now: now, on: tx)
            for rejected in correction?.rejected ?? [] {
                try await PersonBookkeeping.reject(face: embeddingID, person: rejected, now: now, on: tx)
            }
            if let name = detection.xmpName { try await XMPFaceNamesTable.record(name, face: embeddingID, photo: payload.photoID, now: now, on: tx) }
            updates.append(IndexUpdate(embeddingID: embeddingID, person: person, look: look, face: faces[faceIndex]))
            guard let person else { continue }
            if !personIDs.contains(person) { personIDs.append(person) }
            facesPerPerson[person, default: 0] += 1
        }
        if !corrections.isEmpty { try await ParkedFacesTable.drop(photo: payload.photoID, on: tx) }
        try await MediaStore.store(payload, replacingFaces: true, on: tx)
        // A photo that carries no date is dated by its file's time (`TakenDate.Source.mtime`).
        try await PhotosTable.markAnalysed(payload, faceCount: faces.count, personIDs: personIDs, modelVersion: modelVersion,
                                           taken: payload.taken ?? TakenDate.fileTime(modifiedAtMs: modifiedAtMs), now: now, on: tx)
        // After the photo's date: each row copies it.
        try await PhotoPersonsTable.add(photo: payload.photoID, persons: personIDs, on: tx)
        for person in personIDs { try await PersonsTable.addPhoto(of: person, faces: facesPerPerson[person]!, now: now, on: tx) }
        facesCounter.increment(by: faces.count)
        personsCreatedCounter.increment(by: created.count)
        return CallbackResponse(ok: true, createdPersonIDs: created, personIDs: personIDs)
    }

    /// One look of the index, as the dump lists it.
    private struct DumpedLook {
        let look: Int64
        let person: Int64
        let profile: PersonProfile
    }

    /// A page of representative embeddings, one per look (a person has one, plus one per person merged into it),
    /// for looks with id > `sinceID`, from the in-memory index. Carries the index's epoch and change sequence at
    /// the time of the read: a reader that then asks `changes(sinceSeq:)` with them gets everything that changed
    /// during and after its listing.
    func dump(sinceID: Int64, limit: Int, encoding: EmbeddingEncoding = .f32) async throws -> PersonDump {
        let (page, hasMore, epoch, seq) = state.withLockedValue { state -> ([DumpedLook], Bool, String, Int64) in
            let ids = state.index.lookIDs.filter { $0 > sinceID }
            return (ids.prefix(limit).map { DumpedLook(look: $0, person: state.index.owner(ofLook: $0), profile: state.index.profile(ofLook: $0)!) },
                    ids.count > limit, state.dumpEpoch, state.dumpSeq)
        }
        return PersonDump(persons: try await entries(page, encoding: encoding), nextSinceID: page.last?.look ?? sinceID, hasMore: hasMore,
                          epoch: epoch, seq: seq, removed: [], reset: false, embeddingEncoding: encoding, identityRule: identityRule)
    }

    /// The rule of the library's face model, as the dump hands it to the ML service.
    private var identityRule: PersonDump.IdentityRule? {
        model.map { config.identityPolicy(for: $0) }.map {
            PersonDump.IdentityRule(matchThreshold: $0.matchThreshold, smallPersonMargin: $0.smallPersonMargin)
        }
    }

    /// The looks whose representative or owner changed after `sinceSeq` of `epoch`, oldest change first, and the
    /// looks that have no faces any more (`removed`: emptied). Another epoch (this instance reloaded since):
    /// `reset`, and the reader lists everything again.
    func dumpChanges(sinceSeq: Int64, epoch: String, limit: Int, encoding: EmbeddingEncoding = .f32) async throws -> PersonDump {
        let read = state.withLockedValue { state -> (page: [(Int64, DumpedLook?)], hasMore: Bool, next: Int64, epoch: String)? in
            guard state.dumpEpoch == epoch else { return nil }
            let changed = state.lookVersions.filter { $0.value > sinceSeq }.sorted { $0.value < $1.value }
            let page = changed.prefix(limit)
            let next = changed.count > limit ? page.last!.value : state.dumpSeq
            return (page.map { look, _ in
                (look, state.index.profile(ofLook: look).map { DumpedLook(look: look, person: state.index.owner(ofLook: look), profile: $0) })
            }, changed.count > limit, next, state.dumpEpoch)
        }
        guard let read else {
            let current = state.withLockedValue { ($0.dumpEpoch, $0.dumpSeq) }
            return PersonDump(persons: [], nextSinceID: 0, hasMore: false, epoch: current.0, seq: current.1, removed: [], reset: true,
                              embeddingEncoding: encoding, identityRule: identityRule)
        }
        let live = read.page.compactMap(\.1)
        let removed = read.page.filter { $0.1 == nil }.map(\.0)
        return PersonDump(persons: try await entries(live, encoding: encoding), nextSinceID: 0, hasMore: read.hasMore, epoch: read.epoch,
                          seq: read.next, removed: removed, reset: false, embeddingEncoding: encoding, identityRule: identityRule)
    }

    /// Dump entries for looks of the index, with their persons' names and visibility from the database.
    private func entries(_ page: [DumpedLook], encoding: EmbeddingEncoding) async throws -> [PersonDump.Entry] {
        var rows: [Int64: (photo: Int64?, name: String?, hidden: Bool)] = [:]
        if !page.isEmpty {
            for row in try await database.sql.raw("""
                SELECT id, representative_photo_id, display_name, hidden FROM persons WHERE id IN (\(binds: Array(Set(page.map(\.person)))))
                """).all() {
                rows[try row.decode(column: "id", as: Int64.self)] = (try row.decode(column: "representative_photo_id", as: Int64?.self),
                                                                      try row.decode(column: "display_name", as: String?.self),
                                                                      try row.decode(column: "hidden", as: Bool.self))
            }
        }
        return page.map { entry in
            let person = rows[entry.person]
            return PersonDump.Entry(personID: entry.person, lookID: entry.look,
                                    representativeEmbedding: EmbeddingCodec.base64(entry.profile.representative, as: encoding),
                                    representativePhotoID: person?.photo, displayName: person?.name, hidden: person?.hidden ?? false,
                                    meta: ["face_count": entry.profile.count], coherence: entry.profile.coherence)
        }
    }

    /// The representative embedding of one person (all its looks together), if it has faces.
    func representative(of person: Int64) -> Embedding? {
        state.withLockedValue { $0.index.profile(of: person)?.representative }
    }
}
