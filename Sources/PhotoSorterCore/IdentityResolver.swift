/// How one face of a photo was resolved.
public enum FaceIdentity: Sendable, Equatable {
    /// Joins an existing person with this score.
    case existing(person: Int64, similarity: Float)
    /// Starts a new person; faces sharing a slot (a face and its mirror) become one new person.
    case new(slot: Int)
}

/// Tunables of identity resolution: a face joins a person when its mean similarity to the faces of one of the
/// person's looks (`IdentityIndex`) reaches `matchThreshold + smallPersonMargin / sqrt(faces of the look)`. The margin makes a one- or
/// two-face person harder to join: its "mean" is a single noisy sample, and early look-alike pairs are what
/// merges two people. Each face model has its own values (`FaceModel.policy`), chosen with
/// `bench/accuracy/simulate_rules.py` on `lfw_small` (bench/RESULTS.md); the defaults here are dlib's.
public struct IdentityPolicy: Sendable, Hashable {
    /// Base mean-similarity (cosine) a face needs to join a person.
    public var matchThreshold: Float
    /// Extra similarity required from small persons, divided by the square root of their face count.
    public var smallPersonMargin: Float
    /// Two faces of one photo at least this similar are the same face twice (a mirror or a duplicate
    /// composite): both are stored, but they resolve to one person and the photo lists it once.
    public var mirrorThreshold: Float

    public init(matchThreshold: Float = 0.92, smallPersonMargin: Float = 0.01, mirrorThreshold: Float = 0.985) {
        self.matchThreshold = matchThreshold
        self.smallPersonMargin = smallPersonMargin
        self.mirrorThreshold = mirrorThreshold
    }

    /// Similarity a face needs to join a person who has `faceCount` faces.
    public func threshold(forPersonOfSize faceCount: Int) -> Float {
        matchThreshold + smallPersonMargin / Float(max(faceCount, 1)).squareRoot()
    }
}

/// A face's resolution plus its nearest competitor, for the review queue.
public struct FaceResolution: Sendable, Equatable {
    public let identity: FaceIdentity
    /// The look of the person the face joined (see `IdentityIndex`); nil for a new person.
    public var look: Int64? = nil
    /// The most similar person this face did not join, if one scores within `IdentityResolver.reviewWindow`
    /// below the joining threshold (or above it, when the same-photo rule gave it to another face).
    public let runnerUp: Candidate?

    public struct Candidate: Sendable, Equatable {
        public let person: Int64
        public let similarity: Float
    }

    /// The new-person slots of one photo's `resolutions` that may start a person: those holding a face
    /// `mayFoundPerson(index)` allows (a face and its mirror share a slot). The faces of the other slots are unsure
    /// faces only (`FaceModel.unsureBelowNorm`): they stay unsorted.
    public static func foundingSlots(of resolutions: [FaceResolution], mayFoundPerson: (Int) -> Bool) -> Set<Int> {
        Set(resolutions.indices.compactMap { index in
            guard case .new(let slot) = resolutions[index].identity, mayFoundPerson(index) else { return nil }
            return slot
        })
    }
}

/// Assigns the faces of one photo to persons. Pure: reads the index, never changes it.
///
/// Same-photo rule: two faces in one photo are never the same person. Candidate (face, person) pairs are
/// taken best score first; a person already taken in this photo is skipped, so the weaker face falls to
/// its next-best person above threshold or to a new person. Mirror faces follow their twin.
///
/// Cannot-link constraints (`excluded`): a face never joins a person listed for it (a user said "not this
/// person"; a confirmed face of the same photo already is that person).
public struct IdentityResolver: Sendable {
    public var policy: IdentityPolicy

    /// How far below the joining threshold a person still counts as a face's runner-up: a face that nearly
    /// joined someone else is worth a user's look.
    public static let reviewWindow: Float = 0.10

    public init(policy: IdentityPolicy = IdentityPolicy()) {
        self.policy = policy
    }

    public func resolve(_ faces: [Embedding], against index: IdentityIndex) -> [FaceIdentity] {
        resolveWithRunnerUps(faces, against: index).map(\.identity)
    }

    /// `resolve`, with each face's runner-up and per-face excluded persons (`excluded[i]` for face `i`; missing
    /// entries exclude nobody).
    public func resolveWithRunnerUps(_ faces: [Embedding], against index: IdentityIndex,
                                     excluded: [Set<Int64>] = []) -> [FaceResolution] {
        // A face that nearly duplicates an earlier face of the same photo is its mirror.
        var twin = [Int?](repeating: nil, count: faces.count)
        for j in faces.indices {
            for i in 0..<j where twin[i] == nil && faces[i].similarity(to: faces[j]) >= policy.mirrorThreshold {
                twin[j] = i
                break
            }
        }
        var reviewPolicy = policy
        reviewPolicy.matchThreshold -= Self.reviewWindow
        var pairs: [(face: Int, person: Int64, look: Int64, similarity: Float)] = []
        var nearby = [[FaceResolution.Candidate]](repeating: [], count: faces.count)
        let scanned = faces.indices.filter { twin[$0] == nil }
        for (face, candidates) in zip(scanned, index.candidates(for: scanned.map { faces[$0] }, policy: reviewPolicy)) {
            let excludedPersons = face < excluded.count ? excluded[face] : []
            for candidate in candidates where !excludedPersons.contains(candidate.person) {
                nearby[face].append(.init(person: candidate.person, similarity: candidate.similarity))
                // Candidates of the lowered policy join only when they also pass the real threshold (of their look).
                if candidate.similarity >= policy.threshold(forPersonOfSize: index.faceCount(ofLook: candidate.look)) {
                    pairs.append((face, candidate.person, candidate.look, candidate.similarity))
                }
            }
        }
        // Stable order for equal scores: lower face index, then lower person id (the order of `candidates`).
        pairs.sort { ($0.similarity, -$0.face) > ($1.similarity, -$1.face) }

        var result = [FaceIdentity?](repeating: nil, count: faces.count)
        var look = [Int64?](repeating: nil, count: faces.count)
        var takenPersons = Set<Int64>()
        for pair in pairs where result[pair.face] == nil && !takenPersons.contains(pair.person) {
            result[pair.face] = .existing(person: pair.person, similarity: pair.similarity)
            look[pair.face] = pair.look
            takenPersons.insert(pair.person)
        }
        var nextSlot = 0
        for face in faces.indices {
            if let original = twin[face] {
                result[face] = result[original]
                look[face] = look[original]
                nearby[face] = nearby[original]
                continue
            }
            if result[face] == nil {
                result[face] = .new(slot: nextSlot)
                nextSlot += 1
            }
        }
        return faces.indices.map { face in
            let identity = result[face]!
            var joined: Int64?
            if case .existing(let person, _) = identity { joined = person }
            return FaceResolution(identity: identity, look: look[face], runnerUp: nearby[face].first { $0.person != joined })
        }
    }
}
