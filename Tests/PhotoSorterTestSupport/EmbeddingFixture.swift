import Foundation
import PhotoSorterCore

/// Real dlib embeddings of `../shared/testdata/faces`, computed once by `scripts/make-embedding-fixture.py`
/// (HOG, 5-point alignment, ResNet, L2-normalised) and replayed by the tests' fake ML service.
public struct EmbeddingFixture: Sendable {
    public struct Face: Sendable {
        public let bbox: BoundingBox
        public let embedding: Embedding
        public let base64: String
    }

    public struct Photo: Sendable {
        /// Relative to the faces root, e.g. `lfw_small/Tony_Blair/Tony_Blair_0001.jpg`.
        public let path: String
        public let faces: [Face]

        /// Folder name of a labelled photo (`<set>/<identity>/<file>`); nil for `_group`, `_noface` and the like.
        public var identity: String? {
            let parts = path.split(separator: "/")
            guard parts.count == 3, !parts[1].hasPrefix("_") else { return nil }
            return String(parts[1])
        }
    }

    public let photos: [Photo]

    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `PHOTO_SORTER_FACES_DIR`, else `../shared/testdata/faces` beside the repository.
    public static let facesRoot: URL = ProcessInfo.processInfo.environment["PHOTO_SORTER_FACES_DIR"].map { URL(fileURLWithPath: $0) }
        ?? repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata/faces")

    public static let shared: EmbeddingFixture = {
        let url = repositoryRoot.appendingPathComponent("Tests/Fixtures/embeddings.json")
        do { return try EmbeddingFixture(contentsOf: url) } catch { fatalError("cannot load \(url.path): \(error)") }
    }()

    private struct File: Decodable {
        struct Photo: Decodable {
            struct Detection: Decodable { let bbox: [Int]; let embedding: String }
            let path: String
            let detections: [Detection]
        }
        let photos: [Photo]
    }

    init(contentsOf url: URL) throws {
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        photos = try file.photos.map { photo in
            Photo(path: photo.path, faces: try photo.detections.map {
                Face(bbox: BoundingBox(array: $0.bbox)!, embedding: try EmbeddingCodec.decode(base64: $0.embedding), base64: $0.embedding)
            })
        }
    }

    public func photos(inSet set: String) -> [Photo] { photos.filter { $0.path.hasPrefix(set + "/") } }

    public func photo(_ path: String) -> Photo? { photos.first { $0.path == path } }

    /// Index of the face whose box centre is nearest the image centre: the labelled face of an LFW photo.
    public static func centralFace(of photo: Photo, imageSize: (width: Int, height: Int)) -> Int? {
        photo.faces.indices.min { a, b in
            distanceToCentre(photo.faces[a].bbox, imageSize) < distanceToCentre(photo.faces[b].bbox, imageSize)
        }
    }

    private static func distanceToCentre(_ box: BoundingBox, _ size: (width: Int, height: Int)) -> Double {
        let dx = Double(box.x1 + box.x2) / 2 - Double(size.width) / 2
        let dy = Double(box.y1 + box.y2) / 2 - Double(size.height) / 2
        return dx * dx + dy * dy
    }
}

/// Pairwise and BCubed precision/recall of a clustering against labels (same definitions as bench/accuracy).
public struct ClusteringScores: Sendable {
    public let pairwisePrecision: Double
    public let pairwiseRecall: Double
    public let bcubedPrecision: Double
    public let bcubedRecall: Double
    public var bcubedF1: Double { 2 * bcubedPrecision * bcubedRecall / (bcubedPrecision + bcubedRecall) }

    /// `items`: one (label, cluster) per labelled face.
    public init(items: [(label: String, cluster: Int64)]) {
        var truePairs = 0, predictedPairs = 0, labelPairs = 0
        var bcubedP = 0.0, bcubedR = 0.0
        for i in items.indices {
            var sameCluster = 0, sameLabel = 0, both = 0
            for j in items.indices {
                let c = items[i].cluster == items[j].cluster, l = items[i].label == items[j].label
                if c { sameCluster += 1 }
                if l { sameLabel += 1 }
                if c && l { both += 1 }
                if j > i {
                    if c { predictedPairs += 1 }
                    if l { labelPairs += 1 }
                    if c && l { truePairs += 1 }
                }
            }
            bcubedP += Double(both) / Double(sameCluster)
            bcubedR += Double(both) / Double(sameLabel)
        }
        pairwisePrecision = predictedPairs == 0 ? 1 : Double(truePairs) / Double(predictedPairs)
        pairwiseRecall = labelPairs == 0 ? 1 : Double(truePairs) / Double(labelPairs)
        bcubedPrecision = bcubedP / Double(items.count)
        bcubedRecall = bcubedR / Double(items.count)
    }
}
