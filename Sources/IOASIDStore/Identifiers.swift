/// A 32-bit identifier: ``IOASID`` and ``SetID`` share their number handling,
/// ordering and coding (a bare number in JSON) through this protocol.
public protocol NumericIdentifier: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByIntegerLiteral, CustomStringConvertible where RawValue == UInt32, IntegerLiteralType == UInt32
{
    /// Wraps a number.
    init(rawValue: UInt32)
}

extension NumericIdentifier {
    /// Wraps a number.
    public init(_ rawValue: UInt32) { self.init(rawValue: rawValue) }
    /// Wraps an integer literal.
    public init(integerLiteral value: UInt32) { self.init(rawValue: value) }
    /// The number in decimal.
    public var description: String { String(rawValue) }
    /// Orders by number.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    /// Encodes as a bare number.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    /// Decodes from a bare number.
    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(UInt32.self))
    }
}

/// An I/O address space ID: a PCIe PASID or an Arm SSID.
///
/// Valid IDs run from 1 to capacity − 1; ID 0 is reserved (RID_PASID /
/// `IOMMU_NO_PASID`) and never handed out.
public struct IOASID: NumericIdentifier {
    /// The numeric ID.
    public let rawValue: UInt32
    /// Wraps a numeric ID.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

/// The ID of an IOASID set (a VM's namespace, or the system set).
public struct SetID: NumericIdentifier {
    /// The numeric set ID.
    public let rawValue: UInt32
    /// Wraps a numeric set ID.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The system set, created at initialisation for host (bare-metal) SVA; never destroyed.
    public static let system = SetID(1)
}
