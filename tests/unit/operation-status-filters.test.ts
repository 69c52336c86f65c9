import { OperationStatus, automationListOperationsQuerySchema, listOperationsQuerySchema } from "@runbridge/contracts";

/** Both operation lists filter by status with the values of the one OperationStatus enum. */
describe("operation list status filters", () => {
  const lists = { management: listOperationsQuerySchema, automation: automationListOperationsQuerySchema };

  it.each(Object.entries(lists))("%s list accepts every status and nothing else", (_name, schema) => {
    for (const status of Object.values(OperationStatus)) {
      expect(schema.validate({ status }).error).toBeUndefined();
    }
    expect(schema.validate({ status: "queued" }).error?.details[0]?.message).toBe(
      `"status" must be one of [${Object.values(OperationStatus).join(", ")}]`,
    );
  });
});
