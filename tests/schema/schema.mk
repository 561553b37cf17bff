# tests/schema/ — keeps scenarios/schema.json and scenarios/FORMAT.md in step
# with the validator (orchestrator/scenario.c) and the action table
# (agents/action_table.c).  Needs python3 and python3-jsonschema (Debian 12).
#
#   make schema-check   metaschema, key sets, enums, action params, differential
#                       probes against cyrange validate, shipped scenarios,
#                       accepted golden cases, FORMAT.md examples and outputs
#   make schema-docs    regenerate the action table in scenarios/FORMAT.md

.PHONY: schema-check schema-docs

schema-check: $(BUILD)/cyrange
	@CYRANGE=$(BUILD)/cyrange /usr/bin/python3 tests/schema/check-schema.py

schema-docs:
	/usr/bin/python3 tests/schema/check-schema.py --write-docs
