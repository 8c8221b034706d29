/// The guest IDs of an export's ID lines, checked for one named twice once
/// every line has been read.
///
/// The (guest ID, line) pairs go into one array, which is sorted at the end:
/// a sequential pass whatever order the guests come in (already ascending
/// guests cost one linear pass of the sort), with no hash table to miss the
/// cache on every line and nothing an export could craft to collide. In a
/// profile of a 1M-ID import, `Set<UInt32>` inserts took about 10% of the
/// samples; the sort and the scan take 0.2%.
struct GuestIDCheck {
    /// `guest << 32 | line`.
    private var pairs: [UInt64] = []

    /// Notes that line `line` names `guest`.
    mutating func note(_ guest: UInt32, line: Int) {
        pairs.append(UInt64(guest) << 32 | UInt64(UInt32(clamping: line)))
    }

    /// The guest ID named twice that a reader going line by line meets first,
    /// and the line naming it the second time; `nil` when every guest ID is named once.
    mutating func firstRepeat() -> (guest: UInt32, line: Int)? {
        pairs.sort()
        var first: (guest: UInt32, line: Int)?
        var index = 1
        while index < pairs.count {
            if pairs[index] >> 32 == pairs[index - 1] >> 32 {
                // Within one guest's run the lines ascend: the second occurrence is the earliest repeat.
                let line = Int(UInt32(truncatingIfNeeded: pairs[index]))
                if line < first?.line ?? .max { first = (UInt32(pairs[index] >> 32), line) }
            }
            index += 1
        }
        return first
    }
}
