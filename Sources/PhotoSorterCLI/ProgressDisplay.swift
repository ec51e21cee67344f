import Foundation
import PhotoSorterServer

/// Progress of `sort` and `reprocess`: a live bar on a terminal, a line every five seconds otherwise.
final class ProgressDisplay {
    private let live: Bool
    private var lastLine = Date.distantPast
    /// Photos already finished by an earlier run when this one started; they do not count towards the rate.
    private var alreadyDone: Int?

    init(live: Bool) {
        self.live = live
    }

    func show(_ status: IngestStatus, elapsed: TimeInterval, persons: Int) {
        let scanning = status.status == "SCANNING"
        show(done: status.processed + status.failed, total: max(status.scanned - status.skipped - status.rejected, 0) + status.skipped,
             inFlight: status.processing, counting: scanning, elapsed: elapsed,
             detail: "\(status.faces) faces · \(persons) persons", failed: status.failed)
    }

    func show(_ status: ReprocessStatus, elapsed: TimeInterval) {
        show(done: status.analysed + status.failed, total: status.total, inFlight: 0, counting: false, elapsed: elapsed,
             detail: "re-analysed with \(status.model)", failed: status.failed)
    }

    /// `counting`: the total is still growing (a scan is running), so no ETA yet.
    private func show(done: Int, total: Int, inFlight: Int, counting: Bool, elapsed: TimeInterval, detail: String, failed: Int) {
        if alreadyDone == nil && !counting { alreadyDone = done - inFlight }
        let rate = elapsed > 0 ? Double(done - (alreadyDone ?? done)) / elapsed : 0
        let remaining = max(total - done, 0)
        let eta = rate > 0 && !counting ? Self.duration(Double(remaining) / rate) : "--"
        let fraction = total > 0 ? min(Double(done) / Double(total), 1) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = "\(bar) \(done)/\(total) photos\(counting ? " (scanning…)" : "") · \(detail) · "
            + String(format: "%.1f photos/s", rate) + " · ETA \(eta)" + (failed > 0 ? " · \(failed) failed" : "")
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
