/// A face rectangle in original (orientation-corrected) pixel coordinates: `[x1, y1, x2, y2]`.
public struct BoundingBox: Codable, Sendable, Equatable {
    public var x1: Int
    public var y1: Int
    public var x2: Int
    public var y2: Int

    public init(x1: Int, y1: Int, x2: Int, y2: Int) {
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
    }

    /// Builds a box from the wire form `[x1, y1, x2, y2]`; nil unless it has four values with x1 < x2 and y1 < y2.
    public init?(array: [Int]) {
        guard array.count == 4, array[0] < array[2], array[1] < array[3] else { return nil }
        self.init(x1: array[0], y1: array[1], x2: array[2], y2: array[3])
    }

    public var array: [Int] { [x1, y1, x2, y2] }
    public var area: Int { (x2 - x1) * (y2 - y1) }

    /// Area of the overlap divided by the area of the union (0 when they do not overlap).
    public func intersectionOverUnion(with other: BoundingBox) -> Double {
        let width = min(x2, other.x2) - max(x1, other.x1), height = min(y2, other.y2) - max(y1, other.y1)
        guard width > 0, height > 0 else { return 0 }
        let overlap = Double(width * height)
        return overlap / (Double(area + other.area) - overlap)
    }

    /// Least overlap (IoU) for a face of a new analysis to stand in for a face of the old one (a reprocess, a
    /// file whose content changed).
    public static let replacementOverlap = 0.5

    /// For each of `boxes`, the index of the box of `old` it replaces: pairs by largest overlap first, each old
    /// box used once, IoU at least `replacementOverlap`.
    public static func pairByOverlap(_ boxes: [BoundingBox], with old: [BoundingBox]) -> [Int?] {
        var pairs: [(new: Int, old: Int, overlap: Double)] = []
        for (n, box) in boxes.enumerated() {
            for (o, oldBox) in old.enumerated() {
                let overlap = box.intersectionOverUnion(with: oldBox)
                if overlap >= replacementOverlap { pairs.append((n, o, overlap)) }
            }
        }
        pairs.sort { ($0.overlap, -$0.new, -$0.old) > ($1.overlap, -$1.new, -$1.old) }
        var result = [Int?](repeating: nil, count: boxes.count)
        var used = Set<Int>()
        for pair in pairs where result[pair.new] == nil && !used.contains(pair.old) {
            result[pair.new] = pair.old
            used.insert(pair.old)
        }
        return result
    }

    // Wire form is a JSON array, as `bbox` in the ML service's callback payload.
    public init(from decoder: any Decoder) throws {
        let values = try [Int](from: decoder)
        guard let box = BoundingBox(array: values) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "bbox must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got \(values)"))
        }
        self = box
    }

    public func encode(to encoder: any Encoder) throws {
        try array.encode(to: encoder)
    }
}
