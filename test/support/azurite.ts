import { after, before } from "node:test";
import { TableClient } from "@azure/data-tables";
import { type RunningAzurite, startAzurite } from "../../local/azurite/startAzurite";

/** Starts one Azurite for the calling test file and stops it afterwards; each test uses its own table. */
export function useAzurite(): { readonly azurite: RunningAzurite; table(name?: string): Promise<TableClient> } {
  let azurite: RunningAzurite | undefined;
  let counter = 0;
  before(async () => {
    azurite = await startAzurite();
  });
  after(async () => {
    await azurite?.stop();
  });
  return {
    get azurite() {
      if (!azurite) throw new Error("Azurite is not running yet");
      return azurite;
    },
    async table(name = `t${Date.now().toString(36)}${counter++}`) {
      const client = TableClient.fromConnectionString(this.azurite.connectionString, name, { allowInsecureConnection: true });
      await client.createTable();
      return client;
    },
  };
}
