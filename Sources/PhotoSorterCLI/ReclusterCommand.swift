import ArgumentParser
import Foundation
import PhotoSorterServer

/// `photo-sorter recluster`: re-clusters every face under the users' corrections, in process, keeping person ids
/// (`ReclusterService.run`). Prints the result as JSON, and a line for people on standard error.
struct ReclusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recluster",
        abstract: "Re-cluster all faces, obeying every correction and keeping person ids; running it twice changes nothing.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        try await InProcessService.printJSON(options) { services in
            let result = try await services.recluster.run()
            writeToStandardError(result.summaryLine + "\n")
            return result
        }
    }
}

extension ReclusterResult {
    /// "re-clustered 1200 faces: 3 moved, 1 new persons, 2 merged in 0.4s"
    var summaryLine: String {
        "re-clustered \(faces) faces: \(facesMoved) moved, \(personsCreated) new persons, \(personsMerged) merged in "
            + String(format: "%.1fs", seconds)
    }
}
