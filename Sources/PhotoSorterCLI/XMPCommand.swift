import ArgumentParser
import PhotoSorterCore
import PhotoSorterServer

extension SidecarNaming: ExpressibleByArgument {}

/// `photo-sorter xmp`: face names and XMP sidecars.
struct XMPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xmp", abstract: "Face names and XMP sidecars.", subcommands: [XMPWriteCommand.self])
}

/// `photo-sorter xmp write`: the names of the library's faces into the photos' XMP sidecars, in process
/// (`XMPWriteService`). Prints the result as JSON, the summary line and each failure on standard error; exits 1 when a
/// sidecar could not be written (the others are written), 2 when the request is refused.
struct XMPWriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Write each named face as an MWG face region, and the names as keywords, into the photos' XMP sidecars; writing twice changes nothing.")

    @ArgumentParser.Flag(help: "Report what would change; write nothing.")
    var dryRun = false

    @ArgumentParser.Option(help: "Only the photos of this person (a merged id: its survivor).")
    var person: Int64?

    @ArgumentParser.Option(help: "Where a photo has no sidecar, create photo.jpg.xmp (ext: digiKam, darktable) or photo.xmp (basename: Lightroom).")
    var sidecarName: SidecarNaming = .ext

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let result = try await InProcessService.run(options) {
            try await $0.xmp.run(XMPWriteRequest(dryRun: dryRun, personID: person, sidecarName: sidecarName))
        }
        for failure in result.failures { writeToStandardError("\(failure.sidecar): \(failure.reason)\n") }
        writeToStandardError(result.summaryLine + "\n")
        print(try InProcessService.jsonText(result, pretty: true))
        if result.failed > 0 { throw ExitCode(1) }
    }
}
