import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { parsePortOrOff, portOrUndefined } from '../../../cli/options.ts';

describe('port-or-off options', () => {
  const parse = (args: string[]) => {
    const program = new Command().exitOverride().option('--tls-port <port>', 'x', parsePortOrOff, 15012);
    program.parse(['node', 'jibe', ...args]);
    return portOrUndefined(program.opts().tlsPort);
  };
  it('keeps the default, takes a port, and turns the listener off with "off"', () => {
    assert.equal(parse([]), 15012);
    assert.equal(parse(['--tls-port', '0']), 0);
    assert.equal(parse(['--tls-port', '18012']), 18012);
    assert.equal(parse(['--tls-port', 'off']), undefined);
  });
  it('refuses what is neither a port nor off', () => {
    assert.throws(() => parse(['--tls-port', 'of']), /not a port/);
  });
});
