/// Re-clusters every face of a library under the user's corrections and maps the result onto the existing
/// person ids, so ids survive and every change is accounted for. Used by `recluster` (same faces) and by a
/// reprocess (new faces, each carrying the person, confirmation and rejections of the old face it replaces).
///
/// Constraints:
/// - a *confirmed* face (placed by a user, or part of a merge) is fixed to its person: each person's confirmed
///   faces seed one cluster that keeps that person's id (must-link), one look per look they hold (a merge's parts
///   stay side by side, see `IdentityIndex`);
/// - a face marked "not this person" never shares a cluster with a face that person had (nor takes that id),
///   and two faces of one photo never share a person (cannot-link; mirrors aside, as in `IdentityResolver`).
///
/// The clustering is the identity rule itself (`IdentityResolver` over an `IdentityIndex`, mean similarity to a
/// person's faces, best pair first) replayed offline over all unconfirmed faces, photo by photo in the order given
/// — callers pass the order in which photos were first committed. Replaying the rule rather than running a generic
/// clusterer keeps one definition of "same person" for live commits and re-clusters (a generic average-linkage
/// run merged two brothers on `lfw_scale` at the threshold it needed on `lfw_small`; bench/RESULTS.md), and makes
/// the result stable: the same faces and constraints give the same clusters, and a library that grew keeps the
/// clusters of its older photos, which were replayed first.
///
/// Ids: a seeded cluster keeps its person; every other cluster takes the old id it shares the most faces with
/// (never a retired id, a seeded person's id, or an id one of its faces rejected); the rest are new persons.
/// An old id left without a cluster is recorded as merged into the person that received most of its faces.
public enum Reclustering {
    /// One stored face, without its vector: the vectors come from a `FaceVectors`, a range of photos at a time.
    public struct Face: Sendable {
        public let id: Int64
        public let photo: Int64
        /// Its person now; nil for a face not placed yet (a reprocess's new face that matches no old one).
        public let person: Int64?
        public let confirmed: Bool
        /// Persons this face is not ("not this person").
        public let rejected: Set<Int64>
        /// The look of its person it counts in, when not the person's own (a merged-in person's id). Kept for a
        /// confirmed face; an unconfirmed face finds its look again.
        public let look: Int64?
        /// False for an unsure face (`FaceModel.unsureBelowNorm`): it joins a person it matches, but starts none and
        /// stays unsorted (no person) otherwise.
        public let mayFoundPerson: Bool

        public init(id: Int64, photo: Int64, person: Int64?, confirmed: Bool = false, rejected: Set<Int64> = [],
                    look: Int64? = nil, mayFoundPerson: Bool = true) {
            precondition(!confirmed || person != nil, "a confirmed face has a person")
            self.id = id
            self.photo = photo
            self.person = person
            self.confirmed = confirmed
            self.rejected = rejected
            self.look = look == person ? nil : look
            self.mayFoundPerson = mayFoundPerson
        }
    }

    /// A person in the result: an existing id, or the n-th new person (numbered from 0 in order of creation).
    public enum Person: Sendable, Hashable {
        case existing(Int64)
        case new(Int)
    }

    /// Where one face ends up.
    public struct Assignment: Sendable, Equatable {
        public let face: Int64
        /// Nil: an unsure face that matched no person stays unsorted.
        public let person: Person?
        /// Similarity to the person when the face joined it by the rule; nil for a confirmed face or one that
        /// started its person.
        public let similarity: Float?
        /// The nearest person it did not join (review queue).
        public let runnerUp: Person?
        public let runnerUpSimilarity: Float?
        /// The look of `person` the face counts in, when not the person's own: a confirmed face's look, or a look
        /// kept from a merge that the face matched best.
        public var look: Int64? = nil
    }

    public struct Outcome: Sendable {
        /// One per input face, in input order.
        public let assignments: [Assignment]
        public let newPersonCount: Int
        /// Old ids that no cluster kept, each with the person that received most of its faces.
        public let merged: [(from: Int64, into: Person)]
    }

    /// Most passes `run` makes to reach a state its own next pass leaves unchanged.
    public static let maxPasses = 5

    /// Re-clusters `faces` (grouped by photo, photos in first-commit order, faces in face order; person ids positive),
    /// whose vectors `vectors` reads, by position in `faces`, as each pass reaches them. `retired` ids (earlier
    /// merges) are never given out again.
    ///
    /// A "not this person" keeps a face away from the faces that person holds *now*, so one pass can leave a state
    /// the next pass would change (faces released by a split are no longer that person's). `run` therefore repeats
    /// the pass on its own result — new persons under provisional ids, merged ids retired and their rejections moved
    /// to the person that absorbed them, as the service records them — until a pass changes nothing, so that a
    /// re-cluster run twice changes nothing the second time. Without rejections one pass is already such a state.
    public static func run(_ faces: [Face], vectors: some FaceVectors, policy: IdentityPolicy,
                           retired: Set<Int64> = []) async throws -> Outcome {
        var current = faces
        var retired = retired
        var outcome = try await pass(current, vectors: vectors, policy: policy, retired: retired)
        var passes = 1
        let hasRejections = faces.contains { !$0.rejected.isEmpty }
        while hasRejections, passes < maxPasses, zip(current, outcome.assignments).contains(where: { face, assignment in
            face.person.map(Person.existing) != assignment.person
        }) {
            let provisionalBase = -(Int64(passes) << 40)
            func id(_ person: Person) -> Int64 {
                switch person {
                case .existing(let id): id
                case .new(let n): provisionalBase - Int64(n)
                }
            }
            let absorbedBy = Dictionary(outcome.merged.map { ($0.from, id($0.into)) }, uniquingKeysWith: { first, _ in first })
            retired.formUnion(absorbedBy.keys)
            current = zip(current, outcome.assignments).map { face, assignment in
                Face(id: face.id, photo: face.photo, person: assignment.person.map(id), confirmed: face.confirmed,
                     rejected: Set(face.rejected.map { absorbedBy[$0] ?? $0 }), look: assignment.look, mayFoundPerson: face.mayFoundPerson)
            }
            outcome = try await pass(current, vectors: vectors, policy: policy, retired: retired)
            passes += 1
        }
        guard passes > 1 else { return outcome }
        // Relative to the input: provisional ids and the last pass's new persons are new, numbered by first appearance.
        var newNumber: [Person: Int] = [:]
        func relabel(_ person: Person) -> Person {
            if case .existing(let id) = person, id > 0 { return person }
            if let n = newNumber[person] { return .new(n) }
            newNumber[person] = newNumber.count
            return .new(newNumber.count - 1)
        }
        let assignments = outcome.assignments.map {
            Assignment(face: $0.face, person: $0.person.map(relabel), similarity: $0.similarity,
                       runnerUp: $0.runnerUp.map(relabel), runnerUpSimilarity: $0.runnerUpSimilarity, look: $0.look)
        }
        return Outcome(assignments: assignments, newPersonCount: newNumber.count,
                       merged: merges(from: faces.map(\.person), to: assignments.map(\.person)))
    }

    /// One replay of the rule over every unconfirmed face, and the id mapping.
    private static func pass(_ faces: [Face], vectors: some FaceVectors, policy: IdentityPolicy,
                             retired: Set<Int64>) async throws -> Outcome {
        let resolver = IdentityResolver(policy: policy)
        var index = IdentityIndex()
        // Index keys: a seeded person's own id; for a cluster of the replay, a key below every real id that grows
        // with creation order, so equal scores resolve in creation order as they do live (ascending person id).
        let firstReplayKey = Int64.min / 2
        var seeded = Set<Int64>()
        // Cannot-link bookkeeping: clusters holding a face of person p now, and clusters holding a face that rejected p.
        var clustersWithFaceOf: [Int64: Set<Int64>] = [:]
        var clustersRejecting: [Int64: Set<Int64>] = [:]
        func join(_ face: Face, _ vector: Embedding, _ key: Int64, look: Int64? = nil) {
            index.add(vector, to: key, look: look)
            if let person = face.person { clustersWithFaceOf[person, default: []].insert(key) }
            for person in face.rejected { clustersRejecting[person, default: []].insert(key) }
        }
        try await vectors.forEachChunk(of: faces.indices.filter { faces[$0].confirmed }) { position, vector in
            let face = faces[position]
            join(face, vector, face.person!, look: face.look)
            seeded.insert(face.person!)
        }

        // Nil: an unsure face left unsorted.
        var keyOfFace = [Int64?](repeating: nil, count: faces.count)
        var lookOfFace = faces.map { $0.confirmed ? $0.look : nil }
        var similarity = [Float?](repeating: nil, count: faces.count)
        var runnerUpKey = [Int64?](repeating: nil, count: faces.count)
        var runnerUpSimilarity = [Float?](repeating: nil, count: faces.count)
        var replayClusters = 0
        var stream = VectorStream(vectors, faceCount: faces.count)
        var start = 0
        while start < faces.count {
            var end = start + 1
            while end < faces.count && faces[end].photo == faces[start].photo { end += 1 }
            let photo = start..<end
            let photoVectors = try await stream.vectors(photo)
            let confirmedPersons = Set(photo.filter { faces[$0].confirmed }.compactMap { faces[$0].person })
            let open = photo.filter { !faces[$0].confirmed }
            for position in photo where faces[position].confirmed { keyOfFace[position] = faces[position].person! }
            let resolutions = resolver.resolveWithRunnerUps(
                open.map { photoVectors[$0 - photo.lowerBound] }, against: index,
                excluded: open.map { position in
                    let face = faces[position]
                    var excluded = confirmedPersons.union(face.person.flatMap { clustersRejecting[$0] } ?? [])
                    for person in face.rejected { excluded.formUnion(clustersWithFaceOf[person] ?? []) }
                    return excluded
                })
            var keyOfSlot: [Int: Int64] = [:]
            let foundingSlots = FaceResolution.foundingSlots(of: resolutions) { faces[open[$0]].mayFoundPerson }
            for (position, resolution) in zip(open, resolutions) {
                switch resolution.identity {
                case .existing(let key, let score):
                    keyOfFace[position] = key
                    similarity[position] = score
                    if let look = resolution.look, look != key { lookOfFace[position] = look }
                case .new(let slot):
                    if let key = keyOfSlot[slot] {
                        keyOfFace[position] = key
                    } else if !foundingSlots.contains(slot) {
                        break   // unsure faces only: they stay unsorted
                    } else {
                        keyOfFace[position] = firstReplayKey + Int64(replayClusters)
                        keyOfSlot[slot] = keyOfFace[position]
                        replayClusters += 1
                    }
                }
                runnerUpKey[position] = resolution.runnerUp?.person
                runnerUpSimilarity[position] = resolution.runnerUp?.similarity
            }
            // Like a commit: the photo was resolved as a whole, then its faces join the index.
            for position in open {
                if let key = keyOfFace[position] { join(faces[position], photoVectors[position - photo.lowerBound], key, look: lookOfFace[position]) }
            }
            start = end
        }

        // Map replay clusters onto old ids by shared faces.
        var clusterFaces = [Set<Int64>](repeating: [], count: replayClusters)
        var forbidden: [Int: Set<Int64>] = [:]
        var oldPersonOfFace: [Int64: Int64] = [:]
        for (position, face) in faces.enumerated() {
            guard let key = keyOfFace[position], key < 0 else { continue }
            let cluster = Int(key - firstReplayKey)
            clusterFaces[cluster].insert(face.id)
            if !face.rejected.isEmpty { forbidden[cluster, default: []].formUnion(face.rejected) }
            if let person = face.person, !seeded.contains(person), !retired.contains(person) { oldPersonOfFace[face.id] = person }
        }
        let kept = keepIDs(clusterFaces: clusterFaces, oldPersonOfFace: oldPersonOfFace, forbidden: forbidden)
        var personOfCluster = [Person](repeating: .new(0), count: replayClusters)
        var newPersonCount = 0
        for cluster in 0..<replayClusters {
            if let id = kept[cluster] {
                personOfCluster[cluster] = .existing(id)
            } else {
                personOfCluster[cluster] = .new(newPersonCount)
                newPersonCount += 1
            }
        }
        func person(ofKey key: Int64) -> Person {
            key < 0 ? personOfCluster[Int(key - firstReplayKey)] : .existing(key)
        }

        let assignments = faces.indices.map { position in
            Assignment(face: faces[position].id, person: keyOfFace[position].map(person(ofKey:)), similarity: similarity[position],
                       runnerUp: runnerUpKey[position].map(person(ofKey:)), runnerUpSimilarity: runnerUpSimilarity[position],
                       look: lookOfFace[position])
        }
        return Outcome(assignments: assignments, newPersonCount: newPersonCount,
                       merged: merges(from: faces.map(\.person), to: assignments.map(\.person)))
    }

    /// How many vectors `run` asks its `FaceVectors` for at once: 4 MiB at 512-d, one database query.
    public static let vectorChunk = 2048

    /// The vectors of one pass, read ahead in chunks of `vectorChunk` positions as the replay moves through the
    /// photos; only the chunk being replayed (and a photo spanning two chunks) is held.
    private struct VectorStream<Source: FaceVectors> {
        let source: Source
        let faceCount: Int
        /// Position of `buffer[0]`.
        private var base = 0
        private var buffer: [Embedding] = []

        init(_ source: Source, faceCount: Int) {
            self.source = source
            self.faceCount = faceCount
        }

        /// The vectors of `positions` (a photo's faces), in order; photos must come in ascending order.
        mutating func vectors(_ positions: Range<Int>) async throws -> [Embedding] {
            precondition(positions.lowerBound >= base, "a pass reads its vectors in order")
            while base + buffer.count < positions.upperBound {
                // Drop what no later photo needs (once per chunk, not per photo), then read the next chunk.
                let done = min(positions.lowerBound - base, buffer.count)
                buffer.removeFirst(done)
                base += done
                let next = Array(base + buffer.count..<min(base + buffer.count + Reclustering.vectorChunk, faceCount))
                let read = try await source.vectors(at: next)
                precondition(read.count == next.count, "a FaceVectors returns one vector per position")
                buffer += read
            }
            return Array(buffer[positions.lowerBound - base..<positions.upperBound - base])
        }
    }

    /// Old id for each cluster that keeps one: `clusterFaces[c]` holds the faces of cluster `c`, `oldPersonOfFace`
    /// the person each face had (faces without one do not vote). Largest overlaps first, each old id used once;
    /// ties go to the lower old id, then the earlier cluster. `forbidden[c]` lists ids cluster `c` may not take.
    public static func keepIDs(clusterFaces: [Set<Int64>], oldPersonOfFace: [Int64: Int64],
                               forbidden: [Int: Set<Int64>] = [:]) -> [Int: Int64] {
        var shared: [Pair: Int] = [:]
        for (cluster, faces) in clusterFaces.enumerated() {
            for face in faces {
                guard let person = oldPersonOfFace[face], forbidden[cluster]?.contains(person) != true else { continue }
                shared[Pair(cluster: cluster, person: person), default: 0] += 1
            }
        }
        let ranked = shared.sorted { a, b in
            (a.value, -a.key.person, -a.key.cluster) > (b.value, -b.key.person, -b.key.cluster)
        }
        var result: [Int: Int64] = [:]
        var usedPersons = Set<Int64>()
        for (pair, _) in ranked where result[pair.cluster] == nil && !usedPersons.contains(pair.person) {
            result[pair.cluster] = pair.person
            usedPersons.insert(pair.person)
        }
        return result
    }

    private struct Pair: Hashable {
        let cluster: Int
        let person: Int64
    }

    /// Old ids that no longer appear, each with the person that received most of their faces.
    private static func merges(from old: [Int64?], to new: [Person?]) -> [(from: Int64, into: Person)] {
        var receivedFrom: [Int64: [Person: Int]] = [:]
        for (from, to) in zip(old, new) {
            if let from, let to { receivedFrom[from, default: [:]][to, default: 0] += 1 }
        }
        let surviving = Set(new.compactMap { $0 })
        let merged = receivedFrom.keys.sorted().compactMap { old -> (from: Int64, into: Person)? in
            guard !surviving.contains(.existing(old)) else { return nil }
            let into = receivedFrom[old]!.max { a, b in
                let (orderA, orderB) = (order(a.key), order(b.key))
                return (a.value, orderB.0, orderB.1) < (b.value, orderA.0, orderA.1)
            }!.key
            return (old, into)
        }
        return merged
    }

    /// Total order on result persons for deterministic tie-breaks: existing ids first, ascending, then new ones.
    private static func order(_ person: Person) -> (Int, Int64) {
        switch person {
        case .existing(let id): (0, id)
        case .new(let n): (1, Int64(n))
        }
    }
}

/// Where `Reclustering.run` reads the faces' vectors: a re-cluster of a large library streams them from the database
/// (a million 512-d vectors are 2 GiB) instead of holding them; a reprocess or a test hands over an array.
public protocol FaceVectors {
    /// The vectors of the faces at `positions` (indices into the faces given to `Reclustering.run`), in that order.
    func vectors(at positions: [Int]) async throws -> [Embedding]
}

extension FaceVectors {
    /// The vectors of `positions`, asked for `Reclustering.vectorChunk` at a time; `body` gets each position with its
    /// vector, in order.
    public func forEachChunk(of positions: [Int], _ body: (Int, Embedding) throws -> Void) async throws {
        for start in stride(from: 0, to: positions.count, by: Reclustering.vectorChunk) {
            let chunk = Array(positions[start..<min(start + Reclustering.vectorChunk, positions.count)])
            for (position, vector) in zip(chunk, try await vectors(at: chunk)) { try body(position, vector) }
        }
    }
}

/// Vectors already in memory, by position.
extension Array: FaceVectors where Element == Embedding {
    public func vectors(at positions: [Int]) async throws -> [Embedding] {
        positions.map { self[$0] }
    }
}
