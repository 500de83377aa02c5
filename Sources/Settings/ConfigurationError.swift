/// A configuration value that cannot be used: the process refuses to start and says which
/// variable is wrong and what it must be.
package struct ConfigurationError: Error, CustomStringConvertible {
    /// The message for the operator.
    package let description: String
    /// Creates the error with an operator-facing message.
    package init(_ description: String) { self.description = description }
}
