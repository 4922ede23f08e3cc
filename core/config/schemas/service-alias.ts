// jibe.dev ServiceAlias: a platform's service that is the same service as a
// canonical host under another name (see core/model/service-alias.ts).
import type { JsonSchema } from './common.ts';
import { array, nonEmptyString, object, oneOfStrings } from './common.ts';
import { ALIAS_PLATFORMS } from '../../model/service-alias.ts';

const alias = object(
  {
    platform: oneOfStrings([...ALIAS_PLATFORMS]),
    name: nonEmptyString,
    namespace: nonEmptyString,
    datacenter: nonEmptyString,
  },
  ['platform', 'name'],
);

export const serviceAliasSchema: JsonSchema = object({ host: nonEmptyString, aliases: array(alias, 1) }, ['host', 'aliases']);
