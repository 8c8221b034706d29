/// An I/O address space ID: a PCIe PASID or an Arm SSID.
///
/// Valid IDs run from 1 to capacity − 1; ID 0 is reserved (RID_PASID /
/// `IOMMU_NO_PASID`) and never handed out.
public struct IOASID: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The numeric ID.
    public let rawValue: UInt32

    /// Wraps a numeric ID.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a numeric ID.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps an integer literal.
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// The numeric ID in decimal.
    public var description: String { String(rawValue) }

    /// Orders by numeric value.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Encodes as a bare number.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// Decodes from a bare number.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt32.self)
    }
}

/// The ID of an IOASID set (a VM's namespace, or the system set).
public struct SetID: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The numeric set ID.
    public let rawValue: UInt32

    /// The system set, created at initialisation for host (bare-metal) SVA; never destroyed.
    public static let system = SetID(1)

    /// Wraps a numeric set ID.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps a numeric set ID.
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// Wraps an integer literal.
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// The numeric set ID in decimal.
    public var description: String { String(rawValue) }

    /// Orders by numeric value.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Encodes as a bare number.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// Decodes from a bare number.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt32.self)
    }
}
