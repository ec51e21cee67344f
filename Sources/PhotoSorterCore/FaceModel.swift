/// A face-embedding model the service knows. The ML service names its pipeline in every result as
/// `model_version` = `<embedder>+<detector>-<aligner>` (e.g. `arcface-w600k_mbf+scrfd-500m-5pt`); the embedder
/// part decides the embedding space. Embeddings of two embedders are never compared, so a database holds
/// one embedder's faces at a time (`photo-sorter reprocess` switches), and identity thresholds are per embedder.
public struct FaceModel: Sendable, Hashable, CustomStringConvertible {
    /// The name users pick: `PHOTO_SORTER_ML_MODEL`, `--model`.
    public let name: String
    /// The embedder part of `model_version`.
    public let embedder: String
    /// Length of its embeddings.
    public let dimension: Int
    /// Identity thresholds tuned for this embedder with `bench/accuracy/simulate_rules.py` on `lfw_small` and
    /// checked on `lfw_scale` (bench/RESULTS.md).
    public let policy: IdentityPolicy

    public var description: String { "\(name) (\(embedder), \(dimension)-d)" }

    /// ArcFace MobileFaceNet (insightface `w600k_mbf`, WebFace600K) with the SCRFD-500M detector: the default.
    /// Weights released for non-commercial research use. Thresholds: the best BCubed F1 on `lfw_small` among the
    /// settings whose worst arrival order keeps pairwise precision ≥ 0.995 (0.32, no small-person margin: P 1.000,
    /// BCubed F1 0.994); on `lfw_scale` P 1.000, BCubed F1 0.997. Mirror 0.80: the most similar two faces of one
    /// photo in both sets (1,183 pairs) score 0.69.
    public static let arcface = FaceModel(
        name: "arcface", embedder: "arcface-w600k_mbf", dimension: 512,
        policy: IdentityPolicy(matchThreshold: 0.32, smallPersonMargin: 0, mirrorThreshold: 0.80))

    /// dlib's 5-point aligned ResNet (128-d) with HOG or CNN detection; CC0 weights. Thresholds from the same sweep
    /// on its own embeddings (bench/RESULTS.md): it cannot reach the precision ArcFace does.
    public static let dlib = FaceModel(
        name: "dlib", embedder: "dlib-resnet-v1", dimension: 128,
        policy: IdentityPolicy(matchThreshold: 0.92, smallPersonMargin: 0.01, mirrorThreshold: 0.985))

    public static let all: [FaceModel] = [arcface, dlib]
    public static let `default` = arcface

    /// The model a user names (`arcface`, `dlib`), case-insensitive.
    public static func named(_ name: String) -> FaceModel? {
        all.first { $0.name == name.lowercased() }
    }

    /// The model whose embedder produced a result labelled `modelVersion`.
    public static func of(modelVersion: String) -> FaceModel? {
        let embedder = modelVersion.split(separator: "+", maxSplits: 1).first.map(String.init) ?? modelVersion
        return all.first { $0.embedder == embedder }
    }
}
