import Foundation
import PhotoSorterServer

/// The sort command's progress: a live bar on a terminal, a line every five seconds otherwise.
final class ProgressDisplay {
    private let live: Bool
    private var lastLine = Date.distantPast
    /// Photos already finished by an earlier run when this one started; they do not count towards the rate.
    private var alreadyDone: Int?

    init(live: Bool) {
        self.live = live
    }

    func show(_ status: IngestStatus, elapsed: TimeInterval, persons: Int) {
        let done = status.processed + status.failed
        let total = max(status.scanned - status.skipped - status.rejected, 0) + status.skipped
        if alreadyDone == nil && status.status != "SCANNING" { alreadyDone = done - status.processing }
        let rate = elapsed > 0 ? Double(done - (alreadyDone ?? done)) / elapsed : 0
        let remaining = max(total - done, 0)
        let eta = rate > 0 && status.status != "SCANNING" ? Self.duration(Double(remaining) / rate) : "--"
        let fraction = total > 0 ? Double(done) / Double(total) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let scanning = status.status == "SCANNING" ? " (scanning…)" : ""
        let line = "\(bar) \(done)/\(total) photos\(scanning) · \(status.faces) faces · \(persons) persons · "
            + String(format: "%.1f photos/s", rate) + " · ETA \(eta)" + (status.failed > 0 ? " · \(status.failed) failed" : "")
        if live {
            writeToStandardError("\r\u{1B}[2K" + line)
        } else if Date().timeIntervalSince(lastLine) >= 5 {
            writeToStandardError(line + "\n")
            lastLine = Date()
        }
    }

    func finish() {
        if live { writeToStandardError("\n") }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
