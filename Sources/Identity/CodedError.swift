/// The set of codes one kind of error can carry.
public protocol ErrorDomain {
    associatedtype Code: Hashable, Sendable, CustomStringConvertible
}

/// An error with a stable machine code and a human message (grpc-swift's `RuntimeError`
/// shape, STYLE.md §5). Each decoder names its own domain of codes, e.g.
/// `typealias UVarintError = CodedError<UVarintErrorDomain>`.
public struct CodedError<Domain: ErrorDomain>: Error, Equatable, Sendable, CustomStringConvertible {
    public typealias Code = Domain.Code

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
