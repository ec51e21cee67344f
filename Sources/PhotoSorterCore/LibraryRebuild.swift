/// Rebuilds the person assignments of a whole library from new embeddings (a reprocess with another model or
/// thresholds) while keeping person ids wherever the new grouping allows.
///
/// 1. `cluster` replays the online rule (`IdentityResolver`) over the photos in the order given. Callers pass
///    the order in which the photos were first committed, so a reprocess with the same model and the same
///    embeddings reproduces the same grouping exactly.
/// 2. `keepIDs` maps each new cluster onto the old person it shares the most photos with (each old id used
///    once, the largest overlaps first); clusters left over become new persons.
public enum LibraryRebuild {
    /// One photo's faces, in face-index order.
    public struct Photo: Sendable {
        public let id: Int64
        public let faces: [Embedding]

        public init(id: Int64, faces: [Embedding]) {
            self.id = id
            self.faces = faces
        }
    }

    /// Where one face went: a cluster number (0, 1, … in order of creation) and, when it joined an existing
    /// cluster, its similarity to it.
    public struct FaceAssignment: Sendable, Equatable {
        public let cluster: Int
        public let similarity: Float?
        /// This face started its cluster.
        public let createdCluster: Bool
    }

    /// Assignments per photo (same order as `photos`, faces in order) and the number of clusters.
    public static func cluster(_ photos: [Photo], policy: IdentityPolicy) -> (assignments: [[FaceAssignment]], clusterCount: Int) {
        let resolver = IdentityResolver(policy: policy)
        var index = IdentityIndex()
        var clusterCount = 0
        var assignments: [[FaceAssignment]] = []
        assignments.reserveCapacity(photos.count)
        for photo in photos {
            var newClusterBySlot: [Int: Int] = [:]
            var photoAssignments: [FaceAssignment] = []
            for (face, identity) in zip(photo.faces, resolver.resolve(photo.faces, against: index)) {
                let assignment: FaceAssignment
                switch identity {
                case .existing(let person, let similarity):
                    assignment = FaceAssignment(cluster: Int(person), similarity: similarity, createdCluster: false)
                case .new(let slot):
                    if let cluster = newClusterBySlot[slot] {
                        assignment = FaceAssignment(cluster: cluster, similarity: nil, createdCluster: false)
                    } else {
                        newClusterBySlot[slot] = clusterCount
                        assignment = FaceAssignment(cluster: clusterCount, similarity: nil, createdCluster: true)
                        clusterCount += 1
                    }
                }
                photoAssignments.append(assignment)
                // The photo was resolved as a whole above; like a commit, its faces join the index afterwards.
                index.add(face, to: Int64(assignment.cluster))
            }
            assignments.append(photoAssignments)
        }
        return (assignments, clusterCount)
    }

    /// Old person id for each cluster that keeps one. `clusterPhotos[c]` holds the photos of cluster `c`;
    /// `oldPersonsByPhoto[p]` the persons photo `p` showed before. Ties go to the lower old id, then cluster.
    /// `forbidden[c]` lists ids cluster `c` may not take (a face of it was marked "not this person").
    public static func keepIDs(clusterPhotos: [Set<Int64>], oldPersonsByPhoto: [Int64: [Int64]],
                               forbidden: [Int: Set<Int64>] = [:]) -> [Int: Int64] {
        var shared: [Pair: Int] = [:]
        for (cluster, photos) in clusterPhotos.enumerated() {
            for photo in photos {
                for person in oldPersonsByPhoto[photo] ?? [] where forbidden[cluster]?.contains(person) != true {
                    shared[Pair(cluster: cluster, person: person), default: 0] += 1
                }
            }
        }
        let ranked = shared.sorted { a, b in
            (a.value, -a.key.person, -a.key.cluster) > (b.value, -b.key.person, -b.key.cluster)
        }
        var result: [Int: Int64] = [:]
        var usedPersons = Set<Int64>()
        for (pair, _) in ranked where result[pair.cluster] == nil && !usedPersons.contains(pair.person) {
            result[pair.cluster] = pair.person
            usedPersons.insert(pair.person)
        }
        return result
    }

    private struct Pair: Hashable {
        let cluster: Int
        let person: Int64
    }
}
