// The jibe-ca-root-cert ConfigMap as the leader writes it, and which
// namespaces get one because of their own label.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { caRootConfigMap, caRootPem, namespaceWantsCaRoot } from '../../../../platforms/kubernetes/ca-root-configmap.ts';

const OLD = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----';
const NEW = '-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n\n';

test('root-cert.pem holds every root in force, one PEM block each, newline-terminated', () => {
  const pem = caRootPem([OLD, NEW]);
  assert.equal(pem, `${OLD}\n${NEW.trim()}\n`);
  assert.deepEqual(pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g), [OLD, NEW.trim()]);
  const cm = caRootConfigMap('shop', [OLD]);
  assert.deepEqual(cm.metadata, { name: 'jibe-ca-root-cert', namespace: 'shop', labels: { 'app.kubernetes.io/part-of': 'jibe', 'app.kubernetes.io/component': 'ca-root-cert' } });
  assert.deepEqual(Object.keys(cm.data!), ['root-cert.pem']);
});

test('a namespace wants the roots when labelled jibe-injection=enabled and not terminating', () => {
  assert.equal(namespaceWantsCaRoot({ metadata: { name: 'a', labels: { 'jibe-injection': 'enabled' } } }), true);
  assert.equal(namespaceWantsCaRoot({ metadata: { name: 'a', labels: { 'jibe-injection': 'disabled' } } }), false);
  assert.equal(namespaceWantsCaRoot({ metadata: { name: 'a' } }), false);
  assert.equal(namespaceWantsCaRoot({ metadata: { name: 'a', labels: { 'jibe-injection': 'enabled' } }, status: { phase: 'Terminating' } }), false);
});
