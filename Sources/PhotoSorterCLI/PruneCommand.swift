import ArgumentParser
import Foundation
import PhotoSorterCore
import PhotoSorterServer

/// `photo-sorter prune`: deletes for good the photos whose files have been missing longer than `--older-than`
/// (default 30 days), with their parked faces. `--dry-run` only counts them. Prints the result as JSON.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete photos whose files have been missing longer than --older-than (default 30d); --dry-run only counts them.")

    @ArgumentParser.Option(help: "Only photos missing for longer than this: 30d, 12h, 90m, 45s, 2w, or 0 for every missing photo.")
    var olderThan = "30d"

    @ArgumentParser.Flag(help: "Count what would be deleted; delete nothing.")
    var dryRun = false

    @OptionGroup var options: ConfigOptions

    func validate() throws {
        do { _ = try AgeText.seconds(olderThan) } catch { throw ValidationError("--older-than: \(error.description)") }
    }

    func run() async throws {
        let seconds = try AgeText.seconds(olderThan)
        try await InProcessService.printJSON(options) { services in
            let result = try await services.missingPhotos.prune(olderThanSeconds: seconds, dryRun: dryRun)
            writeToStandardError(dryRun
                ? "would delete \(result.photos) missing photos (\(result.keptMissing) missing for less than \(olderThan) kept)\n"
                : "deleted \(result.photos) missing photos (\(result.keptMissing) missing for less than \(olderThan) kept)\n")
            return result
        }
    }
}
