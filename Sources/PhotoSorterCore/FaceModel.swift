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
    /// A face whose embedding had a norm below this before L2 normalisation (`embedding_norm` in the callback) is
    /// *unsure*: too small, blurred or turned away to recognise. It is stored and drawn on its photo, and it joins
    /// a person it matches by the rule, but it starts no person: it stays unsorted. Nil: the model's norm says
    /// nothing about quality, every face may start a person.
    public let unsureBelowNorm: Float?

    public var description: String { "\(name) (\(embedder), \(dimension)-d)" }

    /// ArcFace MobileFaceNet (insightface `w600k_mbf`, WebFace600K) with the SCRFD-500M detector: the default.
    /// Weights released for non-commercial research use. Thresholds: the best BCubed F1 on `lfw_small` among the
    /// settings whose worst arrival order keeps pairwise precision ≥ 0.995 (0.32, no small-person margin: P 1.000,
    /// BCubed F1 0.994); on `lfw_scale` P 1.000, BCubed F1 0.997. Mirror 0.80: the most similar two faces of one
    /// photo in both sets (1,183 pairs) score 0.69. Unsure below norm 15: of all quality signals the norm tracks
    /// recognition errors best (cfp_dev faces below 15: nearest-neighbour error 0.23, against 0.009 overall); the
    /// floor touches no labelled face of lfw_small, lfw_scale or fgnet_dev, 22 of 3,497 of cfp_dev (profiles), and
    /// 42 of the 657 background faces of the LFW sets (bench/RESULTS.md, "Face-quality signals").
    public static let arcface = FaceModel(
        name: "arcface", embedder: "arcface-w600k_mbf", dimension: 512,
        policy: IdentityPolicy(matchThreshold: 0.32, smallPersonMargin: 0, mirrorThreshold: 0.80), unsureBelowNorm: 15)

    /// dlib's 5-point aligned ResNet (128-d) with HOG or CNN detection; CC0 weights. Thresholds from the same sweep
    /// on its own embeddings (bench/RESULTS.md): it cannot reach the precision ArcFace does. Its descriptor's norm
    /// is not a quality signal: no face is unsure.
    public static let dlib = FaceModel(
        name: "dlib", embedder: "dlib-resnet-v1", dimension: 128,
        policy: IdentityPolicy(matchThreshold: 0.92, smallPersonMargin: 0.01, mirrorThreshold: 0.985), unsureBelowNorm: nil)

    public static let all: [FaceModel] = [arcface, dlib]

    /// Whether a face of this model with `embeddingNorm` (nil: not sent) may start a person.
    public func mayFoundPerson(embeddingNorm: Double?) -> Bool {
        guard let floor = unsureBelowNorm, let embeddingNorm else { return true }
        return embeddingNorm >= Double(floor)
    }
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
