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

/// In-memory index of every person's looks, the state identity resolution reads. Value type: the server owns
/// one copy behind its serialising identity service and updates it after each commit (a change copies only the
/// storage block it touches, see `PersonRows`).
///
/// A *look* is one mean of a person: its sum of face vectors and their count. A person has its own look, keyed by
/// its id, and keeps the looks of the persons merged into it, keyed by theirs: a merge must not blend a child at 4
/// and at 16 into one mean that matches neither, so a face is compared with each look and a person scores its best.
/// A face joins a look (the one it matched best), and its row records it (`embeddings.look_id`).
///
/// All faces of an index have one dimension: the one given at init, else that of the first face added.
/// Adding, removing or matching a face of another dimension is a programming error (a precondition):
/// check `dimension` first.
public struct IdentityIndex: Sendable {
    /// One row per look, keyed by look id. Nil until the dimension is known (given at init, or fixed by the first face).
    private var rows: PersonRows?
    private var rowOfLook: [Int64: Int] = [:]
    /// The owner of each look kept from a merge; a look absent here is its own person's (look id = person id).
    private var ownerOfMergedLook: [Int64: Int64] = [:]
    /// Every person's looks.
    private var looksOfPerson: [Int64: [Int64]] = [:]

    public init(dimension: Int? = nil) {
        precondition(dimension.map(Embedding.supportedDimensions.contains) ?? true, "unsupported dimension \(dimension!)")
        rows = dimension.map(PersonRows.init(dimension:))
    }

    /// The dimension of every face in the index; nil until the first face fixes it. It stays fixed when
    /// the last person leaves.
    public var dimension: Int? { rows?.dimension }

    public var personCount: Int { looksOfPerson.count }

    /// Every person's id, ascending.
    public var personIDs: [Int64] { looksOfPerson.keys.sorted() }

    /// Every look's id, ascending.
    public var lookIDs: [Int64] { rowOfLook.keys.sorted() }

    /// The person `look` belongs to (itself for a person's own look, or for an unknown one).
    public func owner(ofLook look: Int64) -> Int64 {
        ownerOfMergedLook[look] ?? look
    }

    /// The looks of `person`, ascending (empty for an unknown person).
    public func looks(of person: Int64) -> [Int64] {
        (looksOfPerson[person] ?? []).sorted()
    }

    /// The sum and face count of one look; nil for an unknown look.
    public func profile(ofLook look: Int64) -> PersonProfile? {
        rowOfLook[look].map { rows!.profile(atRow: $0) }
    }

    /// The whole person as one profile: the sum of its looks' sums and counts. Nil for an unknown person.
    public func profile(of person: Int64) -> PersonProfile? {
        guard let looks = looksOfPerson[person] else { return nil }
        let profiles = looks.compactMap(profile(ofLook:))
        var sum = profiles[0].sum
        for profile in profiles.dropFirst() { for i in sum.indices { sum[i] += profile.sum[i] } }
        return PersonProfile(sum: sum, count: profiles.reduce(0) { $0 + $1.count })
    }

    /// Records that `face` belongs to `person`, in `look` (its own look when nil), creating what is new. A look
    /// belongs to the person its latest face was added to.
    public mutating func add(_ face: Embedding, to person: Int64, look: Int64? = nil) {
        requireDimension(of: face)
        let look = look ?? person
        if rows == nil { rows = PersonRows(dimension: face.dimension) }
        if let row = rowOfLook[look] {
            rows!.add(face, toRow: row)
        } else {
            rowOfLook[look] = rows!.append(face, person: look)
        }
        setOwner(of: look, to: person)
    }

    /// Forgets a face of `person`'s `look` (its own when nil); a look left without faces leaves the index, and so
    /// does a person left without looks.
    public mutating func remove(_ face: Embedding, from person: Int64, look: Int64? = nil) {
        requireDimension(of: face)
        let look = look ?? person
        guard let row = rowOfLook[look] else { return }
        let outcome = rows!.remove(face, fromRow: row)
        if outcome.rowRemoved {
            rowOfLook[look] = nil
            setOwner(of: look, to: nil)
        }
        if let moved = outcome.movedPerson { rowOfLook[moved] = row }
    }

    /// Moves `face` from one person and look to another. A face that keeps its look (a merge moves whole looks)
    /// only changes the look's owner: its sum is not touched, so it stays equal to a sum built from scratch.
    public mutating func move(_ face: Embedding, from: (person: Int64, look: Int64?), to: (person: Int64, look: Int64?)) {
        let fromLook = from.look ?? from.person, toLook = to.look ?? to.person
        if fromLook == toLook, rowOfLook[fromLook] != nil {
            setOwner(of: fromLook, to: to.person)
        } else {
            remove(face, from: from.person, look: fromLook)
            add(face, to: to.person, look: toLook)
        }
    }

    /// Keeps `ownerOfMergedLook` and `looksOfPerson` in step; nil: the look left the index.
    private mutating func setOwner(of look: Int64, to person: Int64?) {
        let previous = owner(ofLook: look)
        if let list = looksOfPerson[previous], list.contains(look), previous != person {
            let rest = list.filter { $0 != look }
            looksOfPerson[previous] = rest.isEmpty ? nil : rest
        }
        guard let person else {
            ownerOfMergedLook[look] = nil
            return
        }
        ownerOfMergedLook[look] = person == look ? nil : person
        if looksOfPerson[person]?.contains(look) != true { looksOfPerson[person, default: []].append(look) }
    }

    /// How many faces `person` has in all its looks (0 for an unknown person).
    public func faceCount(of person: Int64) -> Int {
        (looksOfPerson[person] ?? []).reduce(0) { $0 + faceCount(ofLook: $1) }
    }

    /// How many faces `look` has (0 for an unknown look).
    public func faceCount(ofLook look: Int64) -> Int {
        guard let row = rowOfLook[look] else { return 0 }
        return rows!.faceCount(atRow: row)
    }

    /// A look `face` may join under `policy` and its score.
    public struct Candidate: Sendable, Equatable {
        public let person: Int64
        public let look: Int64
        public let similarity: Float
    }

    /// Every look `face` may join under `policy` — mean similarity (`PersonProfile.meanSimilarity`) at least
    /// `policy.threshold(forPersonOfSize:)` of the look's face count — best first, equal similarities by ascending
    /// person id, then look id. Exactly what scoring every look would give: the quantised first pass only skips
    /// looks it proves to be below the threshold (see `PersonRows.candidates`).
    public func candidates(for face: Embedding, policy: IdentityPolicy) -> [Candidate] {
        candidates(for: [face], policy: policy)[0]
    }

    /// `candidates(for:policy:)` of each face, the index read once for all of them (the faces of one photo).
    public func candidates(for faces: [Embedding], policy: IdentityPolicy) -> [[Candidate]] {
        faces.forEach(requireDimension)
        guard let rows else { return faces.map { _ in [] } }
        return rows.candidates(for: faces, policy: policy).map { found in
            found.map { row -> Candidate in
                let look = rows.personID(atRow: row.row)
                return Candidate(person: owner(ofLook: look), look: look, similarity: row.similarity)
            }
            .sorted { ($0.similarity, $1.person, $1.look) > ($1.similarity, $0.person, $0.look) }
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
        private var looks: [Int64: Accumulator] = [:]
        private var ownerOfMergedLook: [Int64: Int64] = [:]

        public init(dimension: Int? = nil) {
            precondition(dimension.map(Embedding.supportedDimensions.contains) ?? true, "unsupported dimension \(dimension!)")
            self.dimension = dimension
        }

        /// How many faces the builder holds.
        public private(set) var faceCount = 0

        /// Adds a face of `person`, in `look` (its own when nil).
        public mutating func add(_ face: Embedding, to person: Int64, look: Int64? = nil) {
            accumulate(face.values, faceCount: 1, into: look ?? person, of: person)
        }

        /// Adds a look's stored exact `sum` of `faceCount` faces (a snapshot of an index), owned by `person`.
        public mutating func add(sum: [Float], faceCount: Int, ofLook look: Int64, person: Int64) {
            precondition(faceCount > 0, "a look of a snapshot has faces")
            accumulate(sum, faceCount: faceCount, into: look, of: person)
        }

        private mutating func accumulate(_ values: [Float], faceCount: Int, into look: Int64, of person: Int64) {
            precondition(dimension == nil || dimension == values.count, "a \(values.count)-d vector does not fit \(dimension!)-d faces")
            dimension = values.count
            looks[look, default: Accumulator(sum: [Float](repeating: 0, count: values.count))].add(values, times: faceCount)
            ownerOfMergedLook[look] = person == look ? nil : person
            self.faceCount += faceCount
        }

        /// The index: looks in ascending id order.
        public func build() -> IdentityIndex {
            var index = IdentityIndex(dimension: dimension)
            guard let dimension else { return index }
            var rows = PersonRows(dimension: dimension)
            for (look, accumulator) in looks.sorted(by: { $0.key < $1.key }) {
                index.rowOfLook[look] = rows.append(sum: accumulator.sum, faceCount: accumulator.count, person: look)
                let owner = ownerOfMergedLook[look] ?? look
                if owner != look { index.ownerOfMergedLook[look] = owner }
                index.looksOfPerson[owner, default: []].append(look)
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
