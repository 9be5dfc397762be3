import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isWellFormed } from "../../shared/protocol/checkin";
import type { TableClient } from "@azure/data-tables";
import {
  assertStorable,
  clip,
  entityBytes,
  isConflict,
  isNotFound,
  isTableMissing,
  isTextPart,
  PART_CHARS,
  readText,
  recovering,
  TABLE_LIMITS,
  textProperties,
} from "../../shared/storage/table";
import { MemoryTelemetry, setTelemetry } from "../../shared/telemetry/telemetry";

describe("texts split across string properties", () => {
  it("reads back what it wrote at every length around a part boundary, and an old single-property row the same", () => {
    for (const length of [0, 1, PART_CHARS - 1, PART_CHARS, PART_CHARS + 1, 3 * PART_CHARS + 7]) {
      const text = Array.from({ length }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
      const properties = textProperties("reasons", text);
      assert.ok(Object.values(properties).every((part) => part.length <= PART_CHARS && part.length <= TABLE_LIMITS.stringChars));
      assert.equal(readText(properties, "reasons"), text, `length ${length}`);
    }
    assert.equal(readText({ reasons: '["a"]' }, "reasons"), '["a"]');
    assert.equal(readText({}, "reasons"), undefined);
  });

  it("tells the parts after the first from the fields records keep", () => {
    assert.deepEqual(Object.keys(textProperties("recent", "x".repeat(PART_CHARS * 2 + 1))).map(isTextPart), [false, true, true]);
    for (const field of ["reasons", "holdReason", "drainAttempts", "orderBootId"]) assert.equal(isTextPart(field), false);
  });
});

describe("the entity size check", () => {
  it("follows Microsoft's formula: 4 bytes, 2 per key character, per property 8 + 2 per name character + the value", () => {
    // Microsoft's worked example: Address "Mountain View" costs (14 * 2) + 4 + 8 + 7 * 2 bytes.
    assert.equal(entityBytes({ partitionKey: "p", rowKey: "r", Address: "Mountain View" }), 4 + 2 * 2 + (13 * 2 + 4) + 8 + 7 * 2);
    assert.equal(entityBytes({ partitionKey: "", rowKey: "", Age: 23, Ok: true }), 4 + (8 + 6 + 8) + (8 + 4 + 1));
  });

  it("refuses a string over 32K characters, more than 252 properties and an entity over 1 MiB before storage does", () => {
    assert.throws(() => assertStorable({ partitionKey: "p", rowKey: "r", text: "x".repeat(TABLE_LIMITS.stringChars + 1) }), /property text exceeds 32768 characters/);
    const many = Object.fromEntries(Array.from({ length: 253 }, (_, i) => [`p${i}`, 1]));
    assert.throws(() => assertStorable({ partitionKey: "p", rowKey: "r", ...many }), /253 properties/);
    const big = textProperties("big", "x".repeat(530_000));
    assert.throws(() => assertStorable({ partitionKey: "p", rowKey: "r", ...big }), /bytes, more than 1048576/);
    assertStorable({ partitionKey: "p", rowKey: "r", ...textProperties("big", "x".repeat(500_000)) });
  });
});

describe("clipped messages", () => {
  it("keep their length limit, say they were cut and never split a surrogate pair", () => {
    assert.equal(clip("short", 10), "short");
    assert.equal(clip("x".repeat(20), 10), `${"x".repeat(9)}…`);
    const clipped = clip(`${"x".repeat(8)}😀😀`, 10);
    assert.ok(clipped.length <= 10 && isWellFormed(clipped), JSON.stringify(clipped));
  });
});

describe("storage errors", () => {
  it("tell a missing table from a missing row, in a single call's shape and in a batch's", () => {
    const rowMissing = { statusCode: 404, details: { errorCode: "ResourceNotFound" } };
    const tableMissing = { statusCode: 404, details: { errorCode: "TableNotFound" } };
    const batchTableMissing = { statusCode: 404, code: "TableNotFound" };
    assert.deepEqual([isNotFound(rowMissing), isTableMissing(rowMissing)], [true, false]);
    assert.deepEqual([isNotFound(tableMissing), isTableMissing(tableMissing)], [false, true]);
    assert.deepEqual([isNotFound(batchTableMissing), isTableMissing(batchTableMissing)], [false, true]);
  });
});

describe("well-formed text", () => {
  it("refuses a lone surrogate and accepts pairs and plain text", () => {
    assert.equal(isWellFormed("linux-image-azure 😀"), true);
    for (const bad of ["\ud800", "a\udc00", "\ud83d", "x\ud800y"]) assert.equal(isWellFormed(bad), false, JSON.stringify(bad));
  });
});

describe("a table that cannot be re-created yet", () => {
  it("fails the call with an error that no caller mistakes for an ETag conflict (Azure answers 409 TableBeingDeleted for a while)", async () => {
    const telemetry = new MemoryTelemetry();
    const previous = setTelemetry(telemetry);
    const original = console.error;
    console.error = () => {};
    try {
      const client = {
        async getEntity() {
          throw Object.assign(new Error("The table specified does not exist."), { statusCode: 404, details: { errorCode: "TableNotFound" } });
        },
        async createTable() {
          throw Object.assign(new Error("The specified table is being deleted."), { statusCode: 409, details: { errorCode: "TableBeingDeleted" } });
        },
      };
      const table = recovering(client as unknown as TableClient, "rollcall");
      const error = await table.getEntity("prod", "lock").then(
        () => assert.fail("a missing table read as a row"),
        (e: unknown) => e,
      );
      assert.equal(isConflict(error), false);
      assert.equal(isNotFound(error), false);
      assert.match((error as Error).message, /Table rollcall is missing and could not be re-created yet: The specified table is being deleted/);
      assert.equal(telemetry.exceptions.length, 1);
    } finally {
      console.error = original;
      setTelemetry(previous);
    }
  });
});
