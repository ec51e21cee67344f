/// What the resolver remembers about one person: the running sum of their face vectors and a bounded
/// set of member faces. Cosine similarity to the *unnormalised* mean (`q · sum / count`) equals the mean
/// of the similarities to every member face: a spread-out person scores lower than a tight one, which
/// is what keeps two look-alike people from being merged through a chain of borderline faces.
public struct PersonProfile: Sendable {
    public private(set) var sum: [Float]
    public private(set) var count: Int

    init(first: Embedding) {
        sum = first.values
        count = 1
    }

    mutating func add(_ face: Embedding) {
        for i in 0..<sum.count { sum[i] += face.values[i] }
        count += 1
    }

    mutating func remove(_ face: Embedding) {
        for i in 0..<sum.count { sum[i] -= face.values[i] }
        count -= 1
    }

    /// Mean similarity of `face` to the person's faces.
    public func meanSimilarity(to face: Embedding) -> Float {
        Embedding.dot(face.values, sum) / Float(count)
    }

    /// Unit-length direction of the person's faces: the representative embedding handed to the ML service.
    public var representative: Embedding {
        // `sum` of unit vectors is never zero for a real person; fall back to the raw sum if it were.
        (try? Embedding(normalising: sum)) ?? (try! Embedding(normalising: [Float](repeating: 1, count: sum.count)))
    }
}

/// In-memory index of every person's profile, the state identity resolution reads. Value type: the
/// server owns one copy behind its serialising identity service and updates it after each commit.
public struct IdentityIndex: Sendable {
    public private(set) var profiles: [Int64: PersonProfile] = [:]
    /// Person ids in insertion order, so scans and ties are deterministic.
    private var order: [Int64] = []

    public init() {}

    public var personCount: Int { profiles.count }

    /// Records that `face` belongs to `person` (creating the profile on first sight).
    public mutating func add(_ face: Embedding, to person: Int64) {
        if profiles[person] == nil {
            profiles[person] = PersonProfile(first: face)
            order.append(person)
        } else {
            profiles[person]!.add(face)
        }
    }

    /// Forgets a face of `person` (its photo was replaced); a person left without faces leaves the index.
    public mutating func remove(_ face: Embedding, from person: Int64) {
        guard var profile = profiles[person] else { return }
        profile.remove(face)
        if profile.count > 0 {
            profiles[person] = profile
        } else {
            profiles[person] = nil
            order.removeAll { $0 == person }
        }
    }

    /// Every person `face` may join under `policy`, best mean similarity first.
    public func candidates(for face: Embedding, policy: IdentityPolicy) -> [(person: Int64, similarity: Float)] {
        var result: [(person: Int64, similarity: Float)] = []
        for person in order {
            let profile = profiles[person]!
            let similarity = profile.meanSimilarity(to: face)
            if similarity >= policy.threshold(forPersonOfSize: profile.count) { result.append((person, similarity)) }
        }
        return result.sorted { $0.similarity > $1.similarity }
    }
}
