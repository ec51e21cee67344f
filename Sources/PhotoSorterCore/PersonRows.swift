import CNibbleScan
import Dispatch
import Foundation

#if !_endian(little)
#error("the 4-bit codes are read as little-endian 16-bit lanes")
#endif

/// Storage behind `IdentityIndex`: one row per look (a person's mean; "person" below is the row's key, a look id),
/// in blocks of `rowsPerBlock` rows.
///
/// A row holds the look's exact float32 sum of face vectors (the source of truth) and a 4-bit copy of
/// their mean vector (`sum / count`), eight times smaller, which every query scans first; only rows whose
/// 4-bit score could reach the threshold are scored again from the exact sum (see `candidates`).
///
/// A full block also gets a centre, the mean of its rows' means, and its rows encode their mean minus the
/// centre. The encoding error grows with the length of what is encoded: dlib's embeddings share a large
/// common direction (unrelated faces score about 0.84), and without it their 4-bit bounds would be
/// too loose to skip anyone.
///
/// Blocks keep copy-on-write cheap: the index is a value the server copies and then mutates, and a change
/// copies only the arrays of the block it touches, not every person's vectors.
struct PersonRows: Sendable {
    /// A change to a shared index copies one block (2 MiB of sums at 512-d); the scan streams each
    /// block's codes (256 KiB at 512-d), and 256-row blocks scanned measurably slower.
    static let rowsPerBlock = 1024

    /// Rows of one block, parallel arrays indexed by slot.
    private struct Block: Sendable {
        var personIDs: [Int64] = []
        var summaries: [RowSummary] = []
        /// `slots × dimension` floats: each person's exact sum of face vectors.
        var sums: [Float] = []
        /// `slots × dimension / 2` bytes: each person's 4-bit mean vector minus `centre`, laid out as
        /// `NibbleCodes` says.
        var codes: [UInt8] = []
        /// `dimension` floats once the block has been full, else empty (no centre).
        var centre: [Float] = []
    }

    let dimension: Int
    private var count = 0
    private var blocks: [Block] = []

    init(dimension: Int) {
        precondition(dimension % NibbleCodes.dimensionsPerGroup == 0 && dimension <= NibbleCodes.maximumDimension)
        self.dimension = dimension
    }

    func personID(atRow row: Int) -> Int64 {
        blocks[row / Self.rowsPerBlock].personIDs[row % Self.rowsPerBlock]
    }

    func faceCount(atRow row: Int) -> Int {
        Int(blocks[row / Self.rowsPerBlock].summaries[row % Self.rowsPerBlock].faceCount)
    }

    /// The exact sum and face count of a row.
    func profile(atRow row: Int) -> PersonProfile {
        let block = blocks[row / Self.rowsPerBlock], slot = row % Self.rowsPerBlock
        let sum = Array(block.sums[slot * dimension..<(slot + 1) * dimension])
        return PersonProfile(sum: sum, count: Int(block.summaries[slot].faceCount))
    }

    /// Adds a row for a new person whose first face is `face`; returns its row.
    mutating func append(_ face: Embedding, person: Int64) -> Int {
        if blocks.last.map({ $0.personIDs.count == Self.rowsPerBlock }) ?? true { blocks.append(Block()) }
        let last = blocks.count - 1
        blocks[last].personIDs.append(person)
        blocks[last].summaries.append(RowSummary(faceCount: 0, scale: 0, errorBound: 0, normBound: 0))
        blocks[last].sums.append(contentsOf: repeatElement(0, count: dimension))
        blocks[last].codes.append(contentsOf: repeatElement(0, count: dimension / 2))
        count += 1
        update(row: count - 1, adding: face, sign: 1)
        if blocks[last].personIDs.count == Self.rowsPerBlock && blocks[last].centre.isEmpty { centre(block: last) }
        return count - 1
    }

    /// Adds a row for a new person with a known exact `sum` of `faceCount` faces (an index built in bulk);
    /// returns its row.
    mutating func append(sum: [Float], faceCount: Int, person: Int64) -> Int {
        precondition(sum.count == dimension && faceCount > 0)
        if blocks.last.map({ $0.personIDs.count == Self.rowsPerBlock }) ?? true { blocks.append(Block()) }
        let last = blocks.count - 1
        blocks[last].personIDs.append(person)
        blocks[last].summaries.append(RowSummary(faceCount: Int32(faceCount), scale: 0, errorBound: 0, normBound: 0))
        blocks[last].sums.append(contentsOf: sum)
        blocks[last].codes.append(contentsOf: repeatElement(0, count: dimension / 2))
        count += 1
        if blocks[last].personIDs.count == Self.rowsPerBlock && blocks[last].centre.isEmpty {
            centre(block: last)   // encodes every row of the block
        }
        return count - 1
    }

    /// Encodes the rows of the last block when it is not full (a full one was encoded when it got its centre):
    /// the end of a bulk build, whose rows are appended without codes.
    mutating func encodeLastBlock() {
        guard let last = blocks.indices.last, blocks[last].centre.isEmpty else { return }
        for slot in 0..<blocks[last].personIDs.count { encode(row: last * Self.rowsPerBlock + slot) }
    }

    /// Adds `face` to the sum of `row`.
    mutating func add(_ face: Embedding, toRow row: Int) {
        update(row: row, adding: face, sign: 1)
    }

    /// Subtracts `face` from the sum of `row`. A row left without faces is replaced by the last row
    /// (swap-remove): `movedPerson` is the person whose row moved into `row`, for the caller to re-point.
    mutating func remove(_ face: Embedding, fromRow row: Int) -> (rowRemoved: Bool, movedPerson: Int64?) {
        let block = row / Self.rowsPerBlock, slot = row % Self.rowsPerBlock
        guard blocks[block].summaries[slot].faceCount == 1 else {
            update(row: row, adding: face, sign: -1)
            return (false, nil)
        }
        let lastRow = count - 1
        let lastBlock = lastRow / Self.rowsPerBlock, lastSlot = lastRow % Self.rowsPerBlock
        var moved: Int64?
        if row != lastRow {
            // Copied out first, so no second reference to the last block's arrays forces a copy-on-write.
            let person = blocks[lastBlock].personIDs[lastSlot]
            let faceCount = blocks[lastBlock].summaries[lastSlot].faceCount
            let sum = Array(blocks[lastBlock].sums[lastSlot * dimension..<(lastSlot + 1) * dimension])
            blocks[block].personIDs[slot] = person
            blocks[block].summaries[slot].faceCount = faceCount
            blocks[block].sums.replaceSubrange(slot * dimension..<(slot + 1) * dimension, with: sum)
            encode(row: row)   // against this block's centre
            moved = person
        }
        blocks[lastBlock].personIDs.removeLast()
        blocks[lastBlock].summaries.removeLast()
        blocks[lastBlock].sums.removeLast(dimension)
        blocks[lastBlock].codes.removeLast(dimension / 2)
        if blocks[lastBlock].personIDs.isEmpty { blocks.removeLast() }
        count -= 1
        return (true, moved)
    }

    /// `sum += sign · face`, element by element in float32 (the same float operations whatever the storage),
    /// then re-encodes the row.
    private mutating func update(row: Int, adding face: Embedding, sign: Float) {
        let dimension = dimension
        let block = row / Self.rowsPerBlock, slot = row % Self.rowsPerBlock
        blocks[block].sums.withUnsafeMutableBufferPointer { sums in
            face.values.withUnsafeBufferPointer { values in
                for i in 0..<dimension { sums[slot * dimension + i] += sign * values[i] }
            }
        }
        blocks[block].summaries[slot].faceCount += sign > 0 ? 1 : -1
        encode(row: row)
    }

    /// Writes the codes and bounds of `row` from its sum, face count and its block's centre.
    private mutating func encode(row: Int) {
        let dimension = dimension
        let block = row / Self.rowsPerBlock, slot = row % Self.rowsPerBlock
        let faceCount = Int(blocks[block].summaries[slot].faceCount)
        // The codes go through a buffer: one closure can't hold `blocks` for reading the sum and for writing.
        blocks[block].summaries[slot] = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: dimension / 2) { codes in
            let summary = blocks[block].sums.withUnsafeBufferPointer { sums in
                blocks[block].centre.withUnsafeBufferPointer { centre in
                    NibbleCodes.encodeMean(of: UnsafeBufferPointer(rebasing: sums[slot * dimension..<(slot + 1) * dimension]),
                                           faceCount: faceCount, centre: centre, into: codes)
                }
            }
            blocks[block].codes.withUnsafeMutableBufferPointer { allCodes in
                _ = UnsafeMutableBufferPointer(rebasing: allCodes[slot * dimension / 2..<(slot + 1) * dimension / 2])
                    .update(fromContentsOf: codes)
            }
            return summary
        }
    }

    /// Gives a full block its centre, the mean of its rows' means, and re-encodes its rows. Any centre keeps
    /// the bounds valid; the block keeps this one for good.
    private mutating func centre(block: Int) {
        var centre = [Float](repeating: 0, count: dimension)
        for slot in 0..<blocks[block].personIDs.count {
            let perFace = 1 / Float(blocks[block].summaries[slot].faceCount)
            for i in 0..<dimension { centre[i] += blocks[block].sums[slot * dimension + i] * perFace }
        }
        let rows = Float(blocks[block].personIDs.count)
        blocks[block].centre = centre.map { $0 / rows }
        for slot in 0..<blocks[block].personIDs.count { encode(row: block * Self.rowsPerBlock + slot) }
    }

    /// Every row whose mean similarity `q · sum / count` reaches `policy.threshold(forPersonOfSize: count)`,
    /// with that similarity, in row order. Exactly the rows an exact scan of every sum would return:
    ///
    /// The 4-bit pass computes, per row, an upper bound of the row's true score (`q · centre` plus
    /// `QuantisedQuery.upperBound`) and skips the row when the bound is below the lowest threshold any row
    /// can have, less a slack that covers float rounding of the bound and of the reported similarity. A row
    /// the exact rule accepts has a bound above that, so it is never skipped; every row not skipped is
    /// decided by the exact rule.
    func candidates(for face: Embedding, policy: IdentityPolicy) -> [(row: Int, similarity: Float)] {
        candidates(for: [face], policy: policy)[0]
    }

    /// `candidates(for:policy:)` of each face, in one pass over the rows: a row's codes are read from memory once
    /// for all faces of a photo, and the scan is bound by memory bandwidth (100,000 persons are 25 MiB of codes).
    func candidates(for faces: [Embedding], policy: IdentityPolicy) -> [[(row: Int, similarity: Float)]] {
        for face in faces {
            precondition(face.dimension == dimension, "a \(face.dimension)-d face cannot be matched against \(dimension)-d persons")
        }
        guard !faces.isEmpty else { return [] }
        let queries = faces.map(QuantisedQuery.init)
        // threshold(n) = match + margin/√n lies between match (n → ∞) and threshold(1), float rounding included.
        let lowestThreshold = min(policy.matchThreshold, policy.threshold(forPersonOfSize: 1))
        let floor = lowestThreshold - QuantisedQuery.roundingSlack
        // A large index is scanned by one thread per core, each over a contiguous range of blocks; their results,
        // concatenated in range order, are the rows in row order as one thread would give them.
        let threads = blocks.count >= Self.parallelScanMinimumBlocks ? min(ProcessInfo.processInfo.activeProcessorCount, blocks.count) : 1
        guard threads > 1 else { return scan(blocks.indices, queries: queries, faces: faces, floor: floor, policy: policy) }
        let partial = ScanSlots(count: threads)
        defer { partial.deallocate() }
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let range = blocks.count * thread / threads..<blocks.count * (thread + 1) / threads
            partial.slots[thread] = scan(range, queries: queries, faces: faces, floor: floor, policy: policy)
        }
        let parts = UnsafeBufferPointer(start: partial.slots, count: threads)
        return faces.indices.map { face in parts.flatMap { $0[face] } }
    }

    /// One result slot per thread of a parallel scan, each written by its thread alone (hence `@unchecked`).
    private struct ScanSlots: @unchecked Sendable {
        let slots: UnsafeMutablePointer<[[(row: Int, similarity: Float)]]>
        let count: Int

        init(count: Int) {
            self.count = count
            slots = .allocate(capacity: count)
            slots.initialize(repeating: [], count: count)
        }

        func deallocate() {
            slots.deinitialize(count: count)
            slots.deallocate()
        }
    }

    /// Blocks from this many on (16,384 persons) are scanned in parallel: below, handing the work to other
    /// threads costs more than it saves.
    static let parallelScanMinimumBlocks = 16

    /// Each face's candidates among the rows of `blockRange`, in row order (see `candidates`).
    private func scan(_ blockRange: Range<Int>, queries: [QuantisedQuery], faces: [Embedding], floor: Float,
                      policy: IdentityPolicy) -> [[(row: Int, similarity: Float)]] {
        let dimension = dimension
        var result = [[(row: Int, similarity: Float)]](repeating: [], count: faces.count)
        // Copied to the stack, 64-byte aligned: the AVX-512 kernel's loads of them then never straddle cache lines.
        withUnsafeTemporaryAllocation(byteCount: dimension * faces.count, alignment: 64) { levelBytes in
            let levels = levelBytes.bindMemory(to: Int8.self)
            for (face, query) in queries.enumerated() {
                _ = UnsafeMutableBufferPointer(rebasing: levels[face * dimension..<(face + 1) * dimension])
                    .initialize(fromContentsOf: query.scanLevels)
            }
            // All of a block's 4-bit dots first, one kernel call per face (the block's codes, 256 KiB at 512-d,
            // stay in L2 for the next face), then their bounds. The last `rowsPerBlock` slots list the rows that pass.
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: Self.rowsPerBlock * (faces.count + 1)) { codedDots in
                let passedSlots = codedDots.baseAddress! + Self.rowsPerBlock * faces.count
                for blockIndex in blockRange {
                    let block = blocks[blockIndex]
                    block.codes.withUnsafeBytes { codes in
                        for face in faces.indices {
                            NibbleCodes.dots(levels.baseAddress! + face * dimension, codes.baseAddress!, dimension: dimension,
                                             rows: block.personIDs.count, into: codedDots.baseAddress! + face * Self.rowsPerBlock)
                        }
                    }
                    for (face, query) in queries.enumerated() {
                        // q · m = q · centre + q · (m − centre), the codes encoding the second term.
                        let centreDot = block.centre.isEmpty ? 0 : Float(Embedding.dot(faces[face].values, block.centre))
                        faces[face].values.withUnsafeBufferPointer { faceValues in
                            block.summaries.withUnsafeBufferPointer { summaries in
                                block.sums.withUnsafeBufferPointer { sums in
                                    // The rows whose bound reaches the floor, then their exact scores. The sums are
                                    // not in cache (2 KiB a row at 512-d, 200 MiB at 100,000 persons): the next row's
                                    // sum is fetched while this one's is scored (bench/RESULTS.md, re-cluster at 1M).
                                    var passed = 0
                                    for slot in 0..<summaries.count
                                    where centreDot + query.upperBound(codedDot: codedDots[face * Self.rowsPerBlock + slot], row: summaries[slot]) >= floor {
                                        passedSlots[passed] = Int32(slot)
                                        passed += 1
                                    }
                                    for index in 0..<passed {
                                        if index + 1 < passed {
                                            nibble_scan_prefetch(sums.baseAddress! + Int(passedSlots[index + 1]) * dimension,
                                                                 dimension * MemoryLayout<Float>.size)
                                        }
                                        let slot = Int(passedSlots[index])
                                        let faceCount = Int(summaries[slot].faceCount)
                                        let sum = UnsafeBufferPointer(rebasing: sums[slot * dimension..<(slot + 1) * dimension])
                                        let similarity = PersonProfile.meanSimilarity(dot: Embedding.dot(faceValues, sum), faceCount: faceCount)
                                        if similarity >= policy.threshold(forPersonOfSize: faceCount) {
                                            result[face].append((blockIndex * Self.rowsPerBlock + slot, similarity))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }
}

/// What the 4-bit pass needs to know about a row besides its codes. The row encodes `r = sum / count − centre`
/// (centre 0 in a block without one) as `scale · (code − 8) + e`, where `e` is the quantisation error.
struct RowSummary: Sendable {
    var faceCount: Int32
    var scale: Float
    /// At least ‖e‖.
    var errorBound: Float
    /// At least ‖r‖.
    var normBound: Float
}

/// The 4-bit encoding of mean vectors and its integer dot product with a query quantised to 8 bits.
///
/// A row's `dimension / 2` bytes are groups of 16 bytes covering 32 dimensions; read as eight
/// little-endian 16-bit lanes, nibble `k` (bits 4k..<4k+4) of lane `j` in group `g` holds the code of
/// dimension `32g + 8k + j`. In bytes: byte `2j` of a group holds dimensions `32g + j` (low nibble) and
/// `32g + 8 + j` (high), byte `2j + 1` holds `32g + 16 + j` and `32g + 24 + j`. The scan multiplies the
/// bytes' low and high nibbles by the query's levels put in that order (`scanLevels`), in the C kernels of
/// CNibbleScan (`dots`).
enum NibbleCodes {
    static let dimensionsPerGroup = 32
    /// The portable kernel sums products `code · level` (at most 15 · 127 = 1905) in 16-bit lanes, one per
    /// 32 dimensions: at most 17 fit in an Int16, hence at most 544 dimensions.
    static let maximumDimension = 544
    /// Candidate scales are `max |m_i| / divisor`: clipping the largest values a little often lowers
    /// the error of the rest; the best of these is kept (7 represents a one-hot vector exactly).
    private static let scaleDivisors: [Float] = [7, 8, 9, 10, 11]

    /// Writes the `sum.count / 2` code bytes of `sum / faceCount − centre` (an empty centre is 0) into `codes`
    /// and returns the bounds the 4-bit pass uses. Computed in float: their rounding (below 10⁻⁶) is inside
    /// `QuantisedQuery.roundingSlack`.
    static func encodeMean(of sum: UnsafeBufferPointer<Float>, faceCount: Int, centre: UnsafeBufferPointer<Float>,
                           into codes: UnsafeMutableBufferPointer<UInt8>) -> RowSummary {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: sum.count) { mean in
            let perFace = SIMD8<Float>(repeating: 1 / Float(faceCount))
            var largestMagnitudes = SIMD8<Float>(), squaredNorms = SIMD8<Float>()
            for start in stride(from: 0, to: sum.count, by: 8) {
                var values = UnsafeRawPointer(sum.baseAddress! + start).loadUnaligned(as: SIMD8<Float>.self) * perFace
                if !centre.isEmpty { values -= UnsafeRawPointer(centre.baseAddress! + start).loadUnaligned(as: SIMD8<Float>.self) }
                UnsafeMutableRawPointer(mean.baseAddress! + start).storeBytes(of: values, as: SIMD8<Float>.self)
                let magnitudes = unsafeBitCast(unsafeBitCast(values, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
                largestMagnitudes.replace(with: magnitudes, where: magnitudes .> largestMagnitudes)
                squaredNorms += values * values
            }
            let largest = largestMagnitudes.max(), squaredNorm = squaredNorms.sum()
            let means = UnsafeBufferPointer(mean)
            var scale: Float = 0, squaredError = squaredNorm   // scale 0: every code 8
            for divisor in scaleDivisors where largest / divisor >= .leastNormalMagnitude {
                let error = Self.squaredError(of: means, scale: largest / divisor)
                if error < squaredError { (scale, squaredError) = (largest / divisor, error) }
            }
            let reciprocal = SIMD8<Float>(repeating: scale > 0 ? 1 / scale : 0)
            for group in 0..<sum.count / dimensionsPerGroup {
                // Nibble k of lane j: dimension 32·group + 8k + j.
                var lanes = SIMD8<UInt32>()
                for nibble in 0..<4 {
                    let values = UnsafeRawPointer(means.baseAddress! + group * dimensionsPerGroup + nibble * 8)
                        .loadUnaligned(as: SIMD8<Float>.self)
                    // 2²³ + code is exact, the code in the low mantissa bits: no checked float-to-int conversion.
                    let biased = level(of: values, reciprocal: reciprocal) + SIMD8(repeating: 8 + 8_388_608)
                    lanes |= (unsafeBitCast(biased, to: SIMD8<UInt32>.self) & 0xF) &<< UInt32(4 * nibble)
                }
                for lane in 0..<8 {
                    codes[group * 16 + lane * 2] = UInt8(truncatingIfNeeded: lanes[lane])
                    codes[group * 16 + lane * 2 + 1] = UInt8(truncatingIfNeeded: lanes[lane] >> 8)
                }
            }
            // Rounded up, so the stored values are bounds.
            return RowSummary(faceCount: Int32(faceCount), scale: scale, errorBound: squaredError.squareRoot().nextUp,
                              normBound: squaredNorm.squareRoot().nextUp)
        }
    }

    /// `‖mean − scale · level‖²` for the levels `encodeMean` stores with `scale`.
    private static func squaredError(of mean: UnsafeBufferPointer<Float>, scale: Float) -> Float {
        let reciprocal = SIMD8<Float>(repeating: 1 / scale), step = SIMD8<Float>(repeating: scale)
        var total = SIMD8<Float>()
        for start in stride(from: 0, to: mean.count, by: 8) {
            let values = UnsafeRawPointer(mean.baseAddress! + start).loadUnaligned(as: SIMD8<Float>.self)
            let residual = values - level(of: values, reciprocal: reciprocal) * step
            total += residual * residual
        }
        return total.sum()
    }

    /// `value · reciprocal` rounded to the nearest integer (ties to even), clamped into −8...7. Adding and
    /// subtracting 1.5 · 2²³ rounds a float below 2²² in magnitude with plain SSE2 arithmetic (`rounded()`
    /// is a libm call there); `replace(with:where:)` compiles to minps/maxps, where `clamped` is a call.
    @inline(__always)
    private static func level(of values: SIMD8<Float>, reciprocal: SIMD8<Float>) -> SIMD8<Float> {
        let rounding = SIMD8<Float>(repeating: 12_582_912)
        let lowest = SIMD8<Float>(repeating: -8), highest = SIMD8<Float>(repeating: 7)
        var level = (values * reciprocal + rounding) - rounding
        level.replace(with: lowest, where: level .< lowest)
        level.replace(with: highest, where: level .> highest)
        return level
    }

    /// A query's levels (−127...127, dimension order) in the order the kernels read them: `dimension / 2`
    /// levels that meet the code bytes' low nibbles, then `dimension / 2` that meet their high nibbles.
    static func scanLevels(_ levels: [Int16]) -> [Int8] {
        precondition(levels.count % dimensionsPerGroup == 0)
        let bytes = levels.count / 2
        var ordered = [Int8](repeating: 0, count: levels.count)
        for byte in 0..<bytes {
            let group = byte / 16, j = byte % 16 / 2
            // Byte 2j: lane j's nibbles 0 and 1; byte 2j + 1: its nibbles 2 and 3 (see `NibbleCodes`).
            let lowDimension = group * dimensionsPerGroup + (byte % 2) * 16 + j
            ordered[byte] = Int8(levels[lowDimension])
            ordered[bytes + byte] = Int8(levels[lowDimension + 8])
        }
        return ordered
    }

    /// The kernels of CNibbleScan, one per instruction set. Chosen at run time (`fastest`) rather than with
    /// -march, so one build runs on every x86_64 and uses AVX2 or AVX-512 VNNI where the CPU has them.
    enum Kernel: Int32, CaseIterable {
        /// C with generic 16-byte vectors: every CPU.
        case portable = 0
        /// `vpmaddubsw` + `vpmaddwd`, 32 bytes at a time.
        case avx2 = 1
        /// `vpdpbusd`, 64 bytes at a time.
        case avx512VNNI = 2

        var isSupported: Bool { nibble_scan_supports(rawValue) != 0 }

        /// The fastest kernel this CPU runs, asked once.
        static let fastest = Kernel(rawValue: nibble_scan_best_variant())!
    }

    /// `dots[r] = Σ_i level_i · code_i` for `rows` consecutive rows at `codes` (`dimension / 2` bytes each),
    /// `scanLevels` being the query's levels in the order `scanLevels(_:)` gives. Exact in 32 bits with every
    /// kernel: |Σ| ≤ 544 · 15 · 127 < 2²⁰, and no kernel's narrower steps saturate or overflow (see nibble_scan.c).
    @inline(__always)
    static func dots(_ scanLevels: UnsafePointer<Int8>, _ codes: UnsafeRawPointer, dimension: Int, rows: Int,
                     into dots: UnsafeMutablePointer<Int32>, kernel: Kernel = .fastest) {
        nibble_scan_dots(kernel.rawValue, scanLevels, codes.assumingMemoryBound(to: UInt8.self), dimension / 2, rows, dots)
    }
}

/// A query face quantised for the 4-bit pass: `q = scale · level + e_q` with levels in −127...127.
///
/// For a row encoding `r = m − centre = s · (c − 8) + e` (see `RowSummary`), writing `b = scale · level`:
/// `q · r = b · s(c − 8) + b · e + e_q · r ≤ scale · s · I + ‖b‖·‖e‖ + ‖e_q‖·‖r‖` (Cauchy–Schwarz), where
/// `I = Σ level_i (c_i − 8)` is an exact integer. That bound is what `upperBound` returns; the scan adds
/// `q · centre`.
struct QuantisedQuery {
    /// Levels are in −127...127: int8, as the kernels' unsigned × signed byte multiplies take them.
    static let largestLevel = 127
    /// Covers, with a wide margin, float rounding in the rows' bounds (below 10⁻⁶, see `encodeMean`), in
    /// `upperBound` and `q · centre` (relative 10⁻⁶ of terms below 2) and in the reported similarity
    /// (10⁻⁷): a bound this far below the threshold is still a rejection.
    static let roundingSlack: Float = 1e-4

    /// The levels in the order the 4-bit kernels read them (`NibbleCodes.scanLevels`).
    let scanLevels: [Int8]
    private let levelSum: Int32
    private let scale: Float
    /// At least ‖b‖ and ‖e_q‖.
    private let normBound: Float
    private let errorBound: Float

    init(_ face: Embedding) {
        let largest = face.values.reduce(Float(0)) { max($0, abs($1)) }
        scale = largest / Float(Self.largestLevel)
        let step = Double(scale)
        let reciprocal = step > 0 ? 1 / step : 0
        // Nearest level, ties up: truncation of a positive number (see `NibbleCodes.code`).
        let levels = face.values.map {
            Int16(min(max(Int(Double($0) * reciprocal + 128.5) - 128, -Self.largestLevel), Self.largestLevel))
        }
        scanLevels = NibbleCodes.scanLevels(levels)
        levelSum = levels.reduce(0) { $0 + Int32($1) }
        var squaredNorm = 0.0, squaredError = 0.0
        for (value, level) in zip(face.values, levels) {
            let dequantised = step * Double(level)
            squaredNorm += dequantised * dequantised
            squaredError += (Double(value) - dequantised) * (Double(value) - dequantised)
        }
        normBound = Float(squaredNorm.squareRoot()).nextUp
        errorBound = Float(squaredError.squareRoot()).nextUp
    }

    /// Upper bound of `q · r` for a row, given `codedDot = Σ level_i · c_i` from `NibbleCodes.dots`.
    @inline(__always)
    func upperBound(codedDot: Int32, row: RowSummary) -> Float {
        // |I| ≤ 544 · 127 · 23 < 2²⁴: exact as a Float.
        let integerDot = Float(codedDot &- 8 &* levelSum)
        return scale * row.scale * integerDot + normBound * row.errorBound + errorBound * row.normBound
    }
}
