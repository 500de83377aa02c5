import Foundation

/// Reads a pipe to its end on a thread of its own. Foundation's `readDataToEndOfFile()` ends
/// the whole test process when a read is interrupted by a signal (a `try!` meets EINTR; it
/// happened under load, and orphaned the workers of the tests then running); this read
/// retries an interrupted call instead.
final class PipeDrain: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written by the reading thread before it signals `done`, read only after `done`.
    private var data = Data()

    init(_ handle: FileHandle) {
        let descriptor = handle.fileDescriptor
        Thread.detachNewThread { [self] in
            data = Self.readToEnd(descriptor)
            done.signal()
        }
    }

    /// What the pipe held, once its writer has closed it.
    func wait() -> Data {
        done.wait()
        return data
    }

    /// Reads `descriptor` until end of file, retrying reads a signal interrupted.
    static func readToEnd(_ descriptor: Int32) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(contentsOf: buffer[0..<count])
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return data
            }
        }
    }
}
