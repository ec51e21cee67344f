/// Wakes a waiting loop early: `wait(upToMs:)` returns when `signal()` is called or the time is up.
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
        if pending {
            pending = false
            return
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(milliseconds))
            await self?.signal()
        }
        await withCheckedContinuation { waiter = $0 }
        pending = false
        timer.cancel()
    }
}
