/** Every transport through the transport contract (tests/transport_contract.ts). */
import { DRIVERS } from "./_transport_drivers.ts";
import { transportContract } from "./transport_contract.ts";

for (const driver of DRIVERS) transportContract(driver);
