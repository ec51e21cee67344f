import Foundation
import PhotoSorterCore
import XCTest

final class EmbeddingCodecTests: XCTestCase {
    func testRoundTripThroughBase64KeepsTheNormalisedVector() throws {
        let raw = (0..<128).map { Float($0 % 7) - 3 }
        let embedding = try Embedding(normalising: raw)
        let decoded = try EmbeddingCodec.decode(base64: EmbeddingCodec.base64(embedding))
        for (a, b) in zip(decoded.values, embedding.values) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(decoded.similarity(to: embedding), 1, accuracy: 1e-5)
    }

    func testBytesAreFloat32LittleEndian() throws {
        var values = [Float](repeating: 0, count: 128)
        values[0] = 1
        let bytes = EmbeddingCodec.encode(try Embedding(normalising: values))
        XCTAssertEqual(Array(bytes.prefix(4)), [0x00, 0x00, 0x80, 0x3F])
        XCTAssertEqual(bytes.count, 512)
    }

    func testUnnormalisedInputIsNormalised() throws {
        let embedding = try Embedding(normalising: [Float](repeating: 3, count: 128))
        XCTAssertEqual(embedding.values.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
    }

    func test512DimensionalEmbeddingsRoundTripThroughBytesAndBase64() throws {
        let embedding = try Embedding(normalising: (0..<512).map { Float(($0 * 37) % 101) - 50 })
        XCTAssertEqual(embedding.dimension, 512)
        let bytes = EmbeddingCodec.encode(embedding)
        XCTAssertEqual(bytes.count, 2048)
        XCTAssertEqual(try EmbeddingCodec.decode(bytes: bytes).dimension, 512)
        // Decoding normalises again, which may move a value by an ulp.
        let decoded = try EmbeddingCodec.decode(base64: EmbeddingCodec.base64(embedding))
        XCTAssertEqual(decoded.dimension, 512)
        for (a, b) in zip(decoded.values, embedding.values) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(decoded.similarity(to: embedding), 1, accuracy: 1e-5)
    }

    func testMalformedEmbeddingsAreRejectedWithTheReason() {
        XCTAssertThrowsError(try EmbeddingCodec.decode(base64: "not base64!")) { XCTAssertEqual($0 as? EmbeddingError, .invalidBase64) }
        XCTAssertThrowsError(try EmbeddingCodec.decode(bytes: Data(count: 100))) { XCTAssertEqual($0 as? EmbeddingError, .wrongByteCount(100)) }
        XCTAssertThrowsError(try EmbeddingCodec.decode(bytes: Data(count: 512))) { XCTAssertEqual($0 as? EmbeddingError, .zeroVector) }
        XCTAssertThrowsError(try EmbeddingCodec.decode(bytes: Data(count: 2048))) { XCTAssertEqual($0 as? EmbeddingError, .zeroVector) }
        XCTAssertThrowsError(try Embedding(normalising: [Float](repeating: .nan, count: 128))) { XCTAssertEqual($0 as? EmbeddingError, .notFinite) }
        XCTAssertThrowsError(try Embedding(normalising: [1, 2])) { XCTAssertEqual($0 as? EmbeddingError, .wrongDimension(2)) }
    }

    func testWrongByteCountsAreRejectedSayingWhatWasExpected() {
        // 256 floats, a 512-d vector short of one value, one not a whole number of floats.
        for count in [1024, 2044, 2050, 0] {
            XCTAssertThrowsError(try EmbeddingCodec.decode(bytes: Data(count: count))) { XCTAssertEqual($0 as? EmbeddingError, .wrongByteCount(count)) }
        }
        XCTAssertEqual(EmbeddingError.wrongByteCount(100).description,
                       "embedding has 100 bytes, expected 512 (128 float32) or 2048 (512 float32)")
        XCTAssertEqual(EmbeddingError.wrongDimension(2).description, "embedding has 2 values, expected 128 or 512")
    }

    func testBoundingBoxDecodesFromTheSpecArrayAndRejectsInvertedBoxes() throws {
        let box = try JSONDecoder().decode(BoundingBox.self, from: Data("[1,2,30,40]".utf8))
        XCTAssertEqual(box, BoundingBox(x1: 1, y1: 2, x2: 30, y2: 40))
        XCTAssertThrowsError(try JSONDecoder().decode(BoundingBox.self, from: Data("[30,2,1,40]".utf8)))
        XCTAssertThrowsError(try JSONDecoder().decode(BoundingBox.self, from: Data("[1,2,3]".utf8)))
    }
}
