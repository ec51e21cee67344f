/// What the resolver remembers about one person: the sum of their face vectors and how many faces that is.
/// Cosine similarity to the *unnormalised* mean (`q · sum / count`) equals the mean of the similarities to
/// every member face: a spread-out person scores lower than a tight one, which is what keeps two look-alike
/// people from being merged through a chain of borderline faces.
public struct PersonProfile: Sendable {
    public let sum: [Float]
    public let count: Int

    /// Mean similarity of `face` to the person's faces: the score identity resolution compares with the threshold.
    public func meanSimilarity(to face: Embedding) -> Float {
        precondition(face.dimension == sum.count, "a \(face.dimension)-d face cannot be compared with a \(sum.count)-d person")
        return Self.meanSimilarity(dot: Embedding.dot(face.values, sum), faceCount: count)
    }

    /// The one formula for a mean similarity, shared with the index's scan so both give the same `Float`.
    static func meanSimilarity(dot: Double, faceCount: Int) -> Float {
        Float(dot / Double(faceCount))
    }

    /// Length of the mean face, `|sum| / count`: the mean similarity of a face to the person is its cosine to
    /// `representative` times this, so the ML service can score a face as the resolver does from the dump.
    public var coherence: Float {
        Float(Embedding.dot(sum, sum).squareRoot() / Double(count))
    }

    /// Unit-length direction of the person's faces: the representative embedding handed to the ML service.
    public var representative: Embedding {
        // `sum` of unit vectors is never zero for a real person; fall back to the raw sum if it were.
        (try? Embedding(normalising: sum)) ?? (try! Embedding(normalising: [Float](repeating: 1, count: sum.count)))
    }
}

/// In-memory index of every person's profile, the state identity resolution reads. Value type: the
/// server owns one copy behind its serialising identity service and updates it after each commit
/// (a change copies only the storage block it touches, see `PersonRows`).
///
/// All faces of an index have one dimension: the one given at init, else that of the first face added.
/// Adding, removing or matching a face of another dimension is a programming error (a precondition):
/// check `dimension` first.
public struct IdentityIndex: Sendable {
    /// Nil until the dimension is known (given at init, or fixed by the first face).
    private var rows: PersonRows?
    private var rowOfPerson: [Int64: Int] = [:]

    public init(dimension: Int? = nil) {
        precondition(dimension.map(Embedding.supportedDimensions.contains) ?? true, "unsupported dimension \(dimension!)")
        rows = dimension.map(PersonRows.init(dimension:))
    }

    /// The dimension of every face in the index; nil until the first face fixes it. It stays fixed when
    /// the last person leaves.
    public var dimension: Int? { rows?.dimension }

    public var personCount: Int { rowOfPerson.count }

    /// Every person's id, ascending.
    public var personIDs: [Int64] { rowOfPerson.keys.sorted() }

    /// Read-only view of the persons by id, as the dictionary it replaces: `keys` (unordered) and
    /// `profiles[id]` (nil for an unknown person). Each lookup copies that person's sum.
    public var profiles: Profiles { Profiles(index: self) }

    public struct Profiles: Sendable {
        fileprivate let index: IdentityIndex

        public var keys: some Collection<Int64> { index.rowOfPerson.keys }
        public var count: Int { index.rowOfPerson.count }

        public subscript(person: Int64) -> PersonProfile? {
            index.rowOfPerson[person].map { index.rows!.profile(atRow: $0) }
        }
    }

    /// Records that `face` belongs to `person` (creating the profile on first sight).
    public mutating func add(_ face: Embedding, to person: Int64) {
        requireDimension(of: face)
        if rows == nil { rows = PersonRows(dimension: face.dimension) }
        if let row = rowOfPerson[person] {
            rows!.add(face, toRow: row)
        } else {
            rowOfPerson[person] = rows!.append(face, person: person)
        }
    }

    /// Forgets a face of `person` (its photo was replaced); a person left without faces leaves the index.
    public mutating func remove(_ face: Embedding, from person: Int64) {
        requireDimension(of: face)
        guard let row = rowOfPerson[person] else { return }
        let outcome = rows!.remove(face, fromRow: row)
        if outcome.rowRemoved { rowOfPerson[person] = nil }
        if let moved = outcome.movedPerson { rowOfPerson[moved] = row }
    }

    /// How many faces `person` has (0 for an unknown person).
    public func faceCount(of person: Int64) -> Int {
        guard let row = rowOfPerson[person] else { return 0 }
        return rows!.faceCount(atRow: row)
    }

    /// Every person `face` may join under `policy` — mean similarity (`PersonProfile.meanSimilarity`) at least
    /// `policy.threshold(forPersonOfSize:)` of their face count — best first, equal similarities by ascending
    /// person id. Exactly what scoring every person would give: the quantised first pass only skips persons
    /// it proves to be below the threshold (see `PersonRows.candidates`).
    public func candidates(for face: Embedding, policy: IdentityPolicy) -> [(person: Int64, similarity: Float)] {
        candidates(for: [face], policy: policy)[0]
    }

    /// `candidates(for:policy:)` of each face, the index read once for all of them (the faces of one photo).
    public func candidates(for faces: [Embedding], policy: IdentityPolicy) -> [[(person: Int64, similarity: Float)]] {
        faces.forEach(requireDimension)
        guard let rows else { return faces.map { _ in [] } }
        return rows.candidates(for: faces, policy: policy).map { found in
            found.map { (person: rows.personID(atRow: $0.row), similarity: $0.similarity) }
                .sorted { ($0.similarity, $1.person) > ($1.similarity, $0.person) }
        }
    }

    /// Builds an index from many faces or stored sums at once (start-up): faces are summed per person and each
    /// person's row is encoded once at the end, instead of after every face as `add` does. Sums of faces are
    /// accumulated in the order given, with the same float operations as `add`, so the result equals adding the
    /// faces one by one in that order.
    public struct Builder: Sendable {
        private struct Accumulator: Sendable {
            var sum: [Float]
            var count = 0

            mutating func add(_ values: [Float], times: Int) {
                sum.withUnsafeMutableBufferPointer { sum in
                    values.withUnsafeBufferPointer { values in
                        for i in 0..<sum.count { sum[i] += values[i] }
                    }
                }
                count += times
            }
        }

        public private(set) var dimension: Int?
        private var persons: [Int64: Accumulator] = [:]

        public init(dimension: Int? = nil) {
            precondition(dimension.map(Embedding.supportedDimensions.contains) ?? true, "unsupported dimension \(dimension!)")
            self.dimension = dimension
        }

        /// How many faces the builder holds.
        public private(set) var faceCount = 0

        public mutating func add(_ face: Embedding, to person: Int64) {
            accumulate(face.values, faceCount: 1, into: person)
        }

        /// Adds a person's stored exact `sum` of `faceCount` faces (a snapshot of an index).
        public mutating func add(sum: [Float], faceCount: Int, of person: Int64) {
            precondition(faceCount > 0, "a person of a snapshot has faces")
            accumulate(sum, faceCount: faceCount, into: person)
        }

        private mutating func accumulate(_ values: [Float], faceCount: Int, into person: Int64) {
            precondition(dimension == nil || dimension == values.count, "a \(values.count)-d vector does not fit \(dimension!)-d faces")
            dimension = values.count
            persons[person, default: Accumulator(sum: [Float](repeating: 0, count: values.count))].add(values, times: faceCount)
            self.faceCount += faceCount
        }

        /// The index: persons in ascending id order.
        public func build() -> IdentityIndex {
            var index = IdentityIndex(dimension: dimension)
            guard let dimension else { return index }
            var rows = PersonRows(dimension: dimension)
            for (person, accumulator) in persons.sorted(by: { $0.key < $1.key }) {
                index.rowOfPerson[person] = rows.append(sum: accumulator.sum, faceCount: accumulator.count, person: person)
            }
            rows.encodeLastBlock()
            index.rows = rows
            return index
        }
    }

    private func requireDimension(of face: Embedding) {
        precondition(dimension == nil || dimension == face.dimension,
                     "a \(face.dimension)-d face does not fit an index of \(dimension!)-d faces")
    }
}
