/// How one face of a photo was resolved.
public enum FaceIdentity: Sendable, Equatable {
    /// Joins an existing person with this score.
    case existing(person: Int64, similarity: Float)
    /// Starts a new person; faces sharing a slot (a face and its mirror) become one new person.
    case new(slot: Int)
}

/// Tunables of identity resolution: a face joins a person when its mean similarity to the person's faces
/// reaches `matchThreshold + smallPersonMargin / sqrt(faces of the person)`. The margin makes a one- or
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

/// Assigns the faces of one photo to persons. Pure: reads the index, never changes it.
///
/// Same-photo rule: two faces in one photo are never the same person. Candidate (face, person) pairs are
/// taken best score first; a person already taken in this photo is skipped, so the weaker face falls to
/// its next-best person above threshold or to a new person. Mirror faces follow their twin.
public struct IdentityResolver: Sendable {
    public var policy: IdentityPolicy

    public init(policy: IdentityPolicy = IdentityPolicy()) {
        self.policy = policy
    }

    public func resolve(_ faces: [Embedding], against index: IdentityIndex) -> [FaceIdentity] {
        // A face that nearly duplicates an earlier face of the same photo is its mirror.
        var twin = [Int?](repeating: nil, count: faces.count)
        for j in faces.indices {
            for i in 0..<j where twin[i] == nil && faces[i].similarity(to: faces[j]) >= policy.mirrorThreshold {
                twin[j] = i
                break
            }
        }
        var pairs: [(face: Int, person: Int64, similarity: Float)] = []
        for face in faces.indices where twin[face] == nil {
            for candidate in index.candidates(for: faces[face], policy: policy) {
                pairs.append((face, candidate.person, candidate.similarity))
            }
        }
        // Stable order for equal scores: lower face index, then lower person id (the order of `candidates`).
        pairs.sort { ($0.similarity, -$0.face) > ($1.similarity, -$1.face) }

        var result = [FaceIdentity?](repeating: nil, count: faces.count)
        var takenPersons = Set<Int64>()
        for pair in pairs where result[pair.face] == nil && !takenPersons.contains(pair.person) {
            result[pair.face] = .existing(person: pair.person, similarity: pair.similarity)
            takenPersons.insert(pair.person)
        }
        var nextSlot = 0
        for face in faces.indices {
            if let original = twin[face] {
                result[face] = result[original]
                continue
            }
            if result[face] == nil {
                result[face] = .new(slot: nextSlot)
                nextSlot += 1
            }
        }
        return result.map { $0! }
    }
}
