/// Wakes a waiting loop early: `wait(upToMs:)` returns when `signal()` is called, the time is up, or the waiting
/// task is cancelled (a service group's shutdown does not wait out a long wait).
actor AsyncSignal {
    private var waiter: CheckedContinuation<Void, Never>?
    private var pending = false

    func signal() {
        if let waiter {
            self.waiter = nil
            waiter.resume()
        } else {
            pending = true
        }
    }

    func wait(upToMs milliseconds: Int64) async {
        if pending || Task.isCancelled {
            pending = false
            return
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(milliseconds))
            await self?.signal()
        }
        await withTaskCancellationHandler {
            // Cancelled before the continuation was stored: the handler's signal would find no waiter.
            await withCheckedContinuation { if Task.isCancelled { $0.resume() } else { waiter = $0 } }
        } onCancel: {
            Task { await self.signal() }
        }
        pending = false
        timer.cancel()
    }
}
