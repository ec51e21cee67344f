import Benchmark
import Foundation
import PhotoSorterCore

/// One iteration: `IdentityResolver.resolve` of one face against an index of `persons` persons (the scan
/// over every look's 4-bit mean, then the exact re-checks). Query faces cycle through a fixed set: four
/// in five are noisy faces of a known person (one candidate), one in five is a stranger (none).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock],
        timeUnits: .microseconds,
        warmupIterations: 20,
        maxDuration: .seconds(10),
        maxIterations: 2_000
    )
    let arcface = FaceModel.arcface.policy, dlib = FaceModel.dlib.policy

    for (dimension, persons, policy) in [(512, 10_000, arcface), (512, 100_000, arcface), (128, 100_000, dlib)] {
        Benchmark("resolve one \(dimension)-d face, \(persons / 1000)k persons") { benchmark, workload in
            workload.resolveNext(benchmark)
        } setup: {
            Workload(dimension: dimension, persons: persons, sharedDirection: 0, policy: policy)
        }
    }
    // dlib's embeddings share a large common direction (faces of unrelated people score about 0.84): the
    // 4-bit pass only prunes there because full storage blocks encode their rows relative to a centre.
    Benchmark("resolve one 128-d face, 100k persons, dlib-like") { benchmark, workload in
        workload.resolveNext(benchmark)
    } setup: {
        Workload(dimension: 128, persons: 100_000, sharedDirection: 4, policy: dlib)
    }
    // Merges keep the merged person's mean as a look of its own (one more row of the 4-bit scan): 100k persons,
    // 20k of which also hold the look of one person merged into them, 120k rows in all.
    Benchmark("resolve one 512-d face, 100k persons, 20k merged looks") { benchmark, workload in
        workload.resolveNext(benchmark)
    } setup: {
        Workload(dimension: 512, persons: 100_000, sharedDirection: 0, policy: arcface, mergedLooks: 20_000)
    }
}

/// An index of random persons and the query faces to resolve against it.
final class Workload: @unchecked Sendable {   // used by one benchmark thread at a time
    let index: IdentityIndex
    let resolver: IdentityResolver
    let queries: [Embedding]
    private var next = 0

    /// Person centres are random unit vectors plus `sharedDirection` times one common unit vector (0: faces of
    /// unrelated persons score about 0; 4: about 0.84, like dlib's). Each person has 3 faces, its centre plus
    /// noise (a face scores about 0.94 with its centre).
    ///
    /// `mergedLooks` more persons are created and then merged as the server merges (`IdentityIndex.move` of each
    /// face into a look of its own): person `persons + i` becomes a look of person `5 * i`, so `persons` persons
    /// hold `persons + mergedLooks` looks (rows). Queries are faces of any look, merged or not.
    init(dimension: Int, persons: Int, sharedDirection: Float, policy: IdentityPolicy, mergedLooks: Int = 0) {
        precondition(mergedLooks * 5 <= persons, "merge into every fifth person at most")
        var random = SplitMix64(seed: UInt64(dimension * (persons + mergedLooks)))
        let shared = random.unitVector(dimension)
        let centres = (0..<persons + mergedLooks).map { _ in
            zip(random.unitVector(dimension), shared).map { $0 + sharedDirection * $1 }
        }
        var index = IdentityIndex(dimension: dimension)
        var facesToMerge: [[Embedding]] = []
        for (person, centre) in centres.enumerated() {
            let faces = (0..<3).map { _ in random.face(near: centre, noise: 0.35) }
            for face in faces { index.add(face, to: Int64(person)) }
            if person >= persons { facesToMerge.append(faces) }
        }
        for (i, faces) in facesToMerge.enumerated() {
            let merged = Int64(persons + i), into = Int64(5 * i)
            for face in faces { index.move(face, from: (person: merged, look: nil), to: (person: into, look: merged)) }
        }
        precondition(index.personCount == persons && index.lookIDs.count == persons + mergedLooks)
        self.index = index
        resolver = IdentityResolver(policy: policy)
        queries = (0..<250).map { query in
            query % 5 == 0
                ? try! Embedding(normalising: random.unitVector(dimension))
                : random.face(near: centres[Int(random.next() % UInt64(centres.count))], noise: 0.35)
        }
    }

    func resolveNext(_ benchmark: Benchmark) {
        let face = queries[next % queries.count]
        next += 1
        benchmark.startMeasurement()
        blackHole(resolver.resolve([face], against: index))
        benchmark.stopMeasurement()
    }
}

/// SplitMix64: reproducible data.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self), u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    mutating func unitVector(_ dimension: Int) -> [Float] {
        let values = (0..<dimension).map { _ in gaussian() }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return values.map { $0 / norm }
    }

    /// `centre` plus Gaussian noise of about `noise` times its length, normalised.
    mutating func face(near centre: [Float], noise: Float) -> Embedding {
        let scale = noise * centre.reduce(0) { $0 + $1 * $1 }.squareRoot() / Float(centre.count).squareRoot()
        return try! Embedding(normalising: centre.map { $0 + scale * gaussian() })
    }
}
