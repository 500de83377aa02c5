import Domain
import Foundation
import Testing

@Suite("Random identifiers", .timeLimit(.minutes(10)))
struct RandomIdentifierTests {
    @Test("UUID.random() makes version 4, variant 1 ids that do not repeat and read back as written")
    func randomUUIDs() throws {
        var seen = Set<UUID>()
        var bitsSet: UInt128 = 0, bitsClear: UInt128 = 0
        for _ in 0..<20_000 {
            let id = UUID.random()
            #expect(seen.insert(id).inserted)
            let text = id.uuidString
            let characters = Array(text)
            #expect(characters[14] == "4", "version nibble of \(text)")
            #expect("89AB".contains(characters[19]), "variant nibble of \(text)")
            #expect(UUID(uuidString: text.lowercased()) == id)
            let value = withUnsafeBytes(of: id.uuid) { $0.loadUnaligned(as: UInt128.self) }
            bitsSet |= value
            bitsClear |= ~value
        }
        // Every bit but the six fixed ones takes both values over the run: the draws fill
        // all 122 random bits, not a part of them.
        let fixedSet = UInt128((0x40 as UInt8)) << 48 | UInt128(0x80 as UInt8) << 64
        let fixedClear = UInt128(0xB0 as UInt8) << 48 | UInt128(0x40 as UInt8) << 64
        #expect((bitsSet & bitsClear).nonzeroBitCount == 122)
        #expect(bitsClear & fixedSet == 0)
        #expect(bitsSet & fixedClear == 0)
    }

    @Test("order numbers read EMP-YYMMDD-XXXXXX with the UTC day and six characters of the unambiguous alphabet")
    func orderNumbers() throws {
        let alphabet = Set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        // 2026-12-06 23:59:59 UTC: still the 6th in UTC, whatever the machine's zone.
        let late = Date(timeIntervalSince1970: 1_796_601_599)
        var seen = Set<String>()
        for _ in 0..<2_000 {
            let number = Checkout.newOrderNumber(now: late)
            #expect(number.hasPrefix("EMP-261206-"), "\(number)")
            let tail = number.dropFirst("EMP-261206-".count)
            #expect(tail.count == 6 && tail.allSatisfy(alphabet.contains), "\(number)")
            seen.insert(number)
        }
        #expect(seen.count > 1_990)  // 2^30 possible tails: a repeat in 2,000 is under one in 500
        #expect(Checkout.newOrderNumber(now: Date(timeIntervalSince1970: 1_796_601_600)).hasPrefix("EMP-261207-"))
        #expect(Checkout.newOrderNumber(now: Date(timeIntervalSince1970: 946_684_800)).hasPrefix("EMP-000101-"))
        // Years before 1900 and dates no clock gives still make a number, not a crash.
        #expect(Checkout.newOrderNumber(now: Date(timeIntervalSince1970: -3_786_825_600)).hasPrefix("EMP-500101-"))
        #expect(Checkout.newOrderNumber(now: .distantFuture).hasPrefix("EMP-"))
        #expect(Checkout.newOrderNumber(now: Date(timeIntervalSince1970: .infinity)).hasPrefix("EMP-700101-"))
    }
}
