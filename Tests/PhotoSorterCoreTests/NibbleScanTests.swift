@testable import PhotoSorterCore
import XCTest

/// The 4-bit scan kernels (CNibbleScan, through `NibbleCodes.dots`) against a plain reference over the layout
/// `NibbleCodes` documents: every kernel this CPU runs gives the same exact Int32.
final class NibbleScanTests: XCTestCase {
    /// `Σ level_i · code_i` of one row, reading dimension `i`'s code as the layout says: nibble `k` of the
    /// little-endian 16-bit lane `j` of group `g`, for `i = 32g + 8k + j`.
    private func referenceDot(levels: [Int16], row: ArraySlice<UInt8>) -> Int32 {
        var sum: Int32 = 0
        for i in levels.indices {
            let group = i / 32, nibble = i % 32 / 8, lane = i % 8
            let byte = row.startIndex + group * 16 + lane * 2
            let bits = UInt16(row[byte]) | UInt16(row[byte + 1]) << 8
            sum += Int32(levels[i]) * Int32((bits >> (4 * nibble)) & 0xF)
        }
        return sum
    }

    private func kernelDots(_ kernel: NibbleCodes.Kernel, levels: [Int16], codes: [UInt8], rows: Int) -> [Int32] {
        let scanLevels = NibbleCodes.scanLevels(levels)
        var dots = [Int32](repeating: .min, count: rows)
        scanLevels.withUnsafeBufferPointer { scanLevels in
            codes.withUnsafeBytes { codes in
                dots.withUnsafeMutableBufferPointer { dots in
                    NibbleCodes.dots(scanLevels.baseAddress!, codes.baseAddress!, dimension: levels.count, rows: rows,
                                     into: dots.baseAddress!, kernel: kernel)
                }
            }
        }
        return dots
    }

    private var supportedKernels: [NibbleCodes.Kernel] { NibbleCodes.Kernel.allCases.filter(\.isSupported) }

    private func assertEveryKernelEqualsTheReference(levels: [Int16], codes: [UInt8], rows: Int,
                                                     file: StaticString = #filePath, line: UInt = #line) {
        let bytes = levels.count / 2
        let expected = (0..<rows).map { referenceDot(levels: levels, row: codes[$0 * bytes..<($0 + 1) * bytes]) }
        for kernel in supportedKernels {
            XCTAssertEqual(kernelDots(kernel, levels: levels, codes: codes, rows: rows), expected,
                           "\(kernel), \(levels.count)-d, \(rows) rows", file: file, line: line)
        }
    }

    func testThePortableKernelAndTheFastestRunHere() {
        XCTAssertTrue(NibbleCodes.Kernel.portable.isSupported)
        XCTAssertTrue(NibbleCodes.Kernel.fastest.isSupported)
        #if arch(x86_64)
        // The fastest is the widest the CPU has.
        XCTAssertEqual(NibbleCodes.Kernel.fastest, supportedKernels.last)
        #endif
    }

    func testEveryKernelEqualsTheReferenceOnRandomCodesAndLevels() {
        var random = SystemRandomNumberGenerator()
        for dimension in [128, 512, NibbleCodes.maximumDimension] {
            // Row counts around the kernels' four rows at a time, and a full storage block.
            for rows in [1, 2, 3, 5, 6, 7, 13, 37, PersonRows.rowsPerBlock - 1] {
                let levels = (0..<dimension).map { _ in Int16.random(in: -127...127, using: &random) }
                let codes = (0..<rows * dimension / 2).map { _ in UInt8.random(in: 0...255, using: &random) }
                assertEveryKernelEqualsTheReference(levels: levels, codes: codes, rows: rows)
            }
        }
    }

    func testEveryKernelIsExactAtTheExtremes() {
        for dimension in [128, 512, NibbleCodes.maximumDimension] {
            let rows = 7
            let fifteens = [UInt8](repeating: 0xFF, count: rows * dimension / 2)
            for level: Int16 in [127, -127] {
                let levels = [Int16](repeating: level, count: dimension)
                XCTAssertEqual(referenceDot(levels: levels, row: fifteens[0..<dimension / 2]), Int32(dimension * 15) * Int32(level))
                assertEveryKernelEqualsTheReference(levels: levels, codes: fifteens, rows: rows)
            }
            // Largest-magnitude levels of alternating sign, and rows mixing 15s and 0s.
            let alternating = (0..<dimension).map { $0 % 3 == 0 ? Int16(-127) : 127 }
            let mixed = (0..<rows * dimension / 2).map { [0xFF, 0x0F, 0xF0, 0x00][$0 % 4] as UInt8 }
            assertEveryKernelEqualsTheReference(levels: alternating, codes: fifteens, rows: rows)
            assertEveryKernelEqualsTheReference(levels: alternating, codes: mixed, rows: rows)
        }
    }

    /// A mean that 4 bits represent exactly (`(code − 8) / 16`, one code 0 so that the scale is 1/16), encoded by
    /// `encodeMean`: a one-hot query at dimension `i` reads back code `i` with every kernel.
    func testEveryKernelReadsTheCodesEncodeMeanWrites() {
        var random = SystemRandomNumberGenerator()
        for dimension in [128, 512] {
            var codes = (0..<dimension).map { _ in Int.random(in: 0...15, using: &random) }
            codes[Int.random(in: 0..<dimension, using: &random)] = 0
            let mean = codes.map { Float($0 - 8) / 16 }
            var encoded = [UInt8](repeating: 0, count: dimension / 2)
            let summary = mean.withUnsafeBufferPointer { mean in
                encoded.withUnsafeMutableBufferPointer { encoded in
                    NibbleCodes.encodeMean(of: mean, faceCount: 1, centre: UnsafeBufferPointer(start: nil, count: 0), into: encoded)
                }
            }
            XCTAssertEqual(summary.scale, 1 / 16)
            for i in 0..<dimension {
                var levels = [Int16](repeating: 0, count: dimension)
                levels[i] = 1
                for kernel in supportedKernels {
                    XCTAssertEqual(kernelDots(kernel, levels: levels, codes: encoded, rows: 1), [Int32(codes[i])],
                                   "\(kernel), \(dimension)-d, dimension \(i)")
                }
            }
        }
    }
}
