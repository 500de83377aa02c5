import Foundation

/// This process's name in the inbox and in health reports: `EMPORIUM_INSTANCE`, else
/// `hostname:pid` (in a container the hostname is the container's id).
package enum ProcessIdentity {
    /// The identity, computed once.
    package static let current: String = {
        if let name = ProcessInfo.processInfo.environment["EMPORIUM_INSTANCE"], !name.isEmpty { return name }
        return "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }()
}
