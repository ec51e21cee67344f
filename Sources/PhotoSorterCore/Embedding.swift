import Foundation

/// An L2-normalised face descriptor (dlib ResNet: 128 dimensions). Cosine similarity is a dot product.
public struct Embedding: Sendable, Equatable {
    public static let dimension = 128
    public let values: [Float]

    /// Normalises `values`; fails when the dimension is wrong, a value is not finite, or the vector is zero.
    public init(normalising values: [Float]) throws(EmbeddingError) {
        guard values.count == Self.dimension else { throw .wrongDimension(values.count) }
        guard values.allSatisfy(\.isFinite) else { throw .notFinite }
        let norm = values.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        guard norm > 1e-6 else { throw .zeroVector }
        self.values = values.map { $0 / norm }
    }

    /// Cosine similarity of two normalised vectors.
    public func similarity(to other: Embedding) -> Float {
        Self.dot(values, other.values)
    }

    @inline(__always)
    static func dot(_ a: [Float], _ b: [Float]) -> Float {
        var sum: Float = 0
        for i in 0..<a.count { sum += a[i] * b[i] }
        return sum
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
        switch self {
        case .invalidBase64: "embedding is not valid base64"
        case .wrongByteCount(let count): "embedding has \(count) bytes, expected \(Embedding.dimension * 4) (128 float32)"
        case .wrongDimension(let count): "embedding has \(count) values, expected \(Embedding.dimension)"
        case .notFinite: "embedding contains NaN or infinity"
        case .zeroVector: "embedding is a zero vector"
        }
    }
}

/// Wire and storage form of embeddings: float32 little-endian bytes, base64 in JSON.
public enum EmbeddingCodec {
    public static func decode(base64: String) throws(EmbeddingError) -> Embedding {
        guard let data = Data(base64Encoded: base64) else { throw .invalidBase64 }
        return try decode(bytes: data)
    }

    public static func decode(bytes: Data) throws(EmbeddingError) -> Embedding {
        guard bytes.count == Embedding.dimension * 4 else { throw .wrongByteCount(bytes.count) }
        var values = [Float](repeating: 0, count: Embedding.dimension)
        bytes.withUnsafeBytes { raw in
            for i in 0..<Embedding.dimension {
                values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        return try Embedding(normalising: values)
    }

    public static func encode(_ embedding: Embedding) -> Data {
        var data = Data(capacity: embedding.values.count * 4)
        for value in embedding.values {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    public static func base64(_ embedding: Embedding) -> String {
        encode(embedding).base64EncodedString()
    }
}
