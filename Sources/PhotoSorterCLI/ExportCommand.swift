import ArgumentParser
import Foundation
import PhotoSorterCore

extension ExportLinkMode: ExpressibleByArgument {}

/// `photo-sorter export DIR`: one folder per person with their photos (a photo of three people is in three
/// folders). A rerun brings the tree up to date and touches nothing it did not make (see `ExportWriter`).
/// Prints a JSON summary; files it could not make or remove are listed on standard error.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one folder per person holding their photos (symlinks, hard links or copies); rerun to update.")

    @ArgumentParser.Argument(help: "Export directory (created when missing).")
    var dir: String

    @ArgumentParser.Option(help: "How each file refers to its photo: symlink, hardlink (same file system only) or copy.")
    var link: ExportLinkMode = .symlink

    @ArgumentParser.Option(help: "Export only persons with at least this many photos.")
    var minPhotos = 1

    @ArgumentParser.Flag(help: "Also export persons without a name, as person-<id>.")
    var includeUnnamed = false

    /// Narrows the export to the photos found (and, with --with, to those persons' folders).
    @OptionGroup var filter: PhotoFilterOptions

    @OptionGroup var options: ConfigOptions

    func validate() throws {
        guard minPhotos >= 1 else { throw ValidationError("--min-photos must be at least 1") }
    }

    func run() async throws {
        let persons = try await InProcessService.run(options) {
            try await $0.people.exportPersons(minPhotos: minPhotos, includeUnnamed: includeUnnamed,
                                              filter: filter.isEmpty ? nil : try await filter.query(on: $0))
        }
        let report: ExportReport
        do {
            report = try ExportWriter(directory: dir, link: link).export(persons)
        } catch let error as ExportError {
            writeToStandardError(try InProcessService.jsonText(ExportRefusal(reason: error.description), pretty: false) + "\n")
            throw ExitCode(2)
        }
        for problem in report.problems { writeToStandardError("\(problem)\n") }
        print(try InProcessService.jsonText(report, pretty: true))
    }
}

/// The CLI's refusal shape, as the HTTP API answers a 4xx: `{"error":true,"reason":...}`.
private struct ExportRefusal: Encodable {
    let error = true
    let reason: String
}
