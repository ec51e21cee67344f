import Foundation

/// An L2-normalised face descriptor: 128 values (dlib ResNet) or 512 (ArcFace). Cosine similarity is a
/// dot product; embeddings of different dimensions come from different models and are never compared.
public struct Embedding: Sendable, Equatable {
    /// Dimensions of the face models the service accepts: dlib ResNet (128) and ArcFace (512).
    public static let supportedDimensions: Set<Int> = [128, 512]
    public let values: [Float]
    public var dimension: Int { values.count }

    /// Normalises `values`; fails when the dimension is not supported, a value is not finite, or the vector is zero.
    public init(normalising values: [Float]) throws(EmbeddingError) {
        guard Self.supportedDimensions.contains(values.count) else { throw .wrongDimension(values.count) }
        var values = values
        let norm = values.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        // A NaN or infinite value makes the norm NaN or infinite (one pass instead of a separate check).
        guard norm.isFinite else { throw .notFinite }
        guard norm > 1e-6 else { throw .zeroVector }
        for i in values.indices { values[i] /= norm }
        self.values = values
    }

    /// Cosine similarity of two normalised vectors of the same dimension.
    public func similarity(to other: Embedding) -> Float {
        precondition(dimension == other.dimension, "cannot compare a \(dimension)-d embedding with a \(other.dimension)-d one")
        return Float(Self.dot(values, other.values))
    }

    /// Dot product accumulated in double precision. Every product of two floats is exact in a double and
    /// the sum's rounding error is some 10⁻¹⁵, far below a float's resolution, so the result rounded to
    /// `Float` does not depend on the order of the additions (short of a sum within 10⁻¹⁵ of a rounding
    /// boundary). Every similarity the core reports is computed this way, so a straightforward reference
    /// loop (as in the tests) gets the same `Float`.
    static func dot(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        precondition(a.count == b.count && a.count % 4 == 0)
        // Four independent accumulators keep the additions pipelined.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i < a.count {
            s0 += Double(a[i]) * Double(b[i])
            s1 += Double(a[i &+ 1]) * Double(b[i &+ 1])
            s2 += Double(a[i &+ 2]) * Double(b[i &+ 2])
            s3 += Double(a[i &+ 3]) * Double(b[i &+ 3])
            i &+= 4
        }
        return (s0 + s1) + (s2 + s3)
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double {
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in dot(a, b) } }
    }
}

/// Why bytes or a base64 string could not become an `Embedding`.
public enum EmbeddingError: Error, Equatable, CustomStringConvertible {
    case invalidBase64
    case wrongByteCount(Int)
    case wrongDimension(Int)
    case notFinite
    case zeroVector

    public var description: String {
        let dimensions = Embedding.supportedDimensions.sorted()
        switch self {
        case .invalidBase64:
            return "embedding is not valid base64"
        case .wrongByteCount(let count):
            let expected = dimensions.map { "\($0 * 4) (\($0) float32)" }.joined(separator: " or ")
            return "embedding has \(count) bytes, expected \(expected)"
        case .wrongDimension(let count):
            return "embedding has \(count) values, expected \(dimensions.map(String.init).joined(separator: " or "))"
        case .notFinite:
            return "embedding contains NaN or infinity"
        case .zeroVector:
            return "embedding is a zero vector"
        }
    }
}

/// How a vector is written on the wire: float32 (exact; storage and callbacks) or float16 (half the size, some
/// 10⁻³ relative error: the person dump, whose vectors only seed the ML service's hints).
public enum EmbeddingEncoding: String, Sendable, Codable {
    case f32, f16
}

/// Wire and storage form of embeddings: float32 little-endian bytes, base64 in JSON. The byte count
/// tells the dimension (4 bytes per value).
public enum EmbeddingCodec {
    public static func decode(base64: String) throws(EmbeddingError) -> Embedding {
        guard let data = Data(base64Encoded: base64) else { throw .invalidBase64 }
        return try decode(bytes: data)
    }

    public static func decode(bytes: Data) throws(EmbeddingError) -> Embedding {
        guard bytes.count % 4 == 0, Embedding.supportedDimensions.contains(bytes.count / 4) else {
            throw .wrongByteCount(bytes.count)
        }
        return try Embedding(normalising: floats(from: bytes))
    }

    public static func encode(_ embedding: Embedding) -> Data {
        bytes(of: embedding.values)
    }

    /// Float32 little-endian bytes of `values`. Little-endian is the platform's order (`PersonRows` refuses to
    /// build on big-endian), so the floats are copied as they are.
    public static func bytes(of values: [Float]) -> Data {
        values.withUnsafeBytes { Data($0) }
    }

    /// The floats of float32 little-endian `bytes` (a whole number of floats), as stored: no normalising.
    public static func floats(from bytes: Data) -> [Float] {
        [Float](unsafeUninitializedCapacity: bytes.count / 4) { buffer, initialized in
            initialized = bytes.copyBytes(to: buffer) / 4
        }
    }

    public static func base64(_ embedding: Embedding, as encoding: EmbeddingEncoding = .f32) -> String {
        switch encoding {
        case .f32: encode(embedding).base64EncodedString()
        case .f16: embedding.values.map(Float16.init).withUnsafeBytes { Data($0) }.base64EncodedString()
        }
    }
}
