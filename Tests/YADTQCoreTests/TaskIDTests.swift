import Foundation
import Testing
import YADTQCore

@Suite("Task ids")
struct TaskIDTests {
    @Test("random ids are lowercase version-4 UUIDs")
    func format() throws {
        let ids = TaskID.random(count: 1000)
        #expect(ids.count == 1000)
        for id in ids {
            let parsed = try #require(UUID(uuidString: id), "\(id) is not a UUID")
            #expect(parsed.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "\(id): version nibble")
            #expect(bytes[8] >> 6 == 0b10, "\(id): variant bits")
        }
    }

    @Test("ids do not repeat, within a batch or across batches")
    func unique() {
        let ids = TaskID.random(count: 50_000) + TaskID.random(count: 50_000)
        #expect(Set(ids).count == ids.count)
        #expect(TaskID.random(count: 0).isEmpty)
    }

    @Test("naming declarations keeps the ids they give and gives the others new, distinct ones")
    func named() {
        let declarations = [
            TaskDeclaration(type: "add"), TaskDeclaration(id: "mine", type: "add"), TaskDeclaration(type: "mul", args: [2]),
        ]
        let named = TaskID.named(declarations)
        #expect(named[1] == declarations[1])
        #expect(named[0].id != nil && named[2].id != nil && named[0].id != named[2].id)
        #expect(named.map(\.type) == ["add", "add", "mul"])
        #expect(named[2].args == [2])
    }

    @Test("every hex digit occurs in every free position")
    func spread() {
        // A stuck or mis-shifted byte would leave a position with one digit only.
        let ids = TaskID.random(count: 2000).map { Array($0.utf8) }
        for position in 0..<36 where ![8, 13, 14, 18, 19, 23].contains(position) {
            #expect(Set(ids.map { $0[position] }).count == 16, "position \(position)")
        }
    }
}
