import CLMDB

/// The LMDB library this process is linked with.
public enum LMDBLibrary {
    /// `mdb_version()`'s numbers: the linked library, not the headers it was built against.
    public static var version: (major: Int, minor: Int, patch: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        _ = mdb_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }

    /// The version as `MAJOR.MINOR.PATCH` (for example `0.9.24`).
    public static var versionString: String {
        let v = version
        return "\(v.major).\(v.minor).\(v.patch)"
    }
}
