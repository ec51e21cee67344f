import Foundation
import PhotoSorterCore
import SQLKit

/// A face that changed person in a correction or a re-cluster; nil persons are "unsorted" (an unsure face that
/// matched no one). Looks are nil for the person's own (see `IdentityIndex`); a merge keeps the look and changes
/// the person.
struct FaceMove: Sendable {
    let embeddingID: Int64
    let face: Embedding
    let from: Int64?
    var fromLook: Int64? = nil
    let to: Int64?
    var toLook: Int64? = nil
}

extension IdentityService {
    /// Runs a change of persons or faces (a correction, a re-cluster) in one transaction, serialised with every
    /// commit (this instance's lock and the cross-instance lock), against an index that is up to date. `body`
    /// returns its result and the faces it moved; once the transaction committed, the index takes the moves (on
    /// top of its current state, like a commit's faces). Other instances learn the moves from the change log
    /// (`identity_changes`) at their next catch-up; a bulk change (more than `bulkChange` moves) bumps the
    /// generation instead, and they reload. A failed body changes nothing.
    func change<T: Sendable>(
        _ body: @escaping @Sendable (_ tx: any SQLDatabase, _ index: IdentityIndex, _ model: FaceModel?) async throws -> (T, [FaceMove])
    ) async throws -> T {
        try await lock.withLock {
            let (result, moves, caughtUp, model, logged) = try await self.database.transaction { tx in
                let (snapshot, caughtUp) = try await self.catchUp(on: tx)
                let (result, moves) = try await body(tx, snapshot.index, snapshot.model)
                let real = moves.filter { $0.from != $0.to || $0.fromLook != $0.toLook }
                let logged: Logged
                if real.count > Self.bulkChange {
                    logged = .generation(try await Self.bumpGeneration(on: tx))
                } else {
                    logged = .changes(try await IdentityLog.append(real.map { IndexChange(move: $0) }, on: tx))
                }
                return (result, real, caughtUp, snapshot.model, logged)
            }
            self.apply(caughtUp, model: model)
            self.state.withLockedValue { state in
                for move in moves {
                    state.apply(move.face, from: move.from.map { ($0, move.fromLook) }, to: move.to.map { ($0, move.toLook) })
                }
                switch logged {
                case .generation(let generation): state.generation = generation
                case .changes(let lastSeq): if let lastSeq { state.lastChangeSeq = lastSeq }
                }
            }
            return result
        }
    }

    /// Moves beyond which other instances reload the whole index rather than replay a change log this long.
    static let bulkChange = 2000

    private enum Logged: Sendable {
        case generation(Int64)
        /// The last sequence number written, nil when there was nothing to log.
        case changes(Int64?)
    }

    /// Brings this instance's index up to date now (after faces were removed outside a commit).
    func catchUpNow() async throws {
        try await lock.withLock {
            let (caughtUp, model) = try await self.database.transaction { tx in
                let (snapshot, caughtUp) = try await self.catchUp(on: tx)
                return (caughtUp, snapshot.model)
            }
            self.apply(caughtUp, model: model)
        }
    }
}

extension IdentityService.IndexChange {
    /// A correction's or re-cluster's move, as the change log records it.
    init(move: FaceMove) {
        self.init(embeddingID: move.embeddingID, from: move.from, fromLook: move.fromLook, to: move.to, toLook: move.toLook, face: move.face)
    }
}
