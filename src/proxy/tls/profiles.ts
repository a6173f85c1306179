// The TLS profiles of a listener: Mozilla's server-side TLS configurations, in OpenSSL's names.
// modern and intermediate are those of Mozilla's guidelines 6.0, less the X25519MLKEM768 group,
// which Node 20's OpenSSL 3.0 does not have; old is that of guidelines 5.7 (6.0 dropped it).

export type TlsProfileName = 'modern' | 'intermediate' | 'old';
export type TlsVersion = 'TLSv1' | 'TLSv1.2' | 'TLSv1.3';

/** What a listener's secure contexts are made with. */
export interface TlsParameters {
  minVersion: TlsVersion;
  /** OpenSSL cipher string: TLS 1.3 suites and TLS 1.2-and-below ciphers, colon-separated. */
  ciphers: string;
  /** Key-exchange groups, colon-separated. */
  ecdhCurve: string;
  /** The server's order of preference wins (Mozilla: only for old, whose clients choose badly). */
  honorCipherOrder: boolean;
}

const TLS13 = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
/** ECDHE key exchange with AES-GCM or ChaCha20: forward secrecy and AEAD only. */
const TLS12_INTERMEDIATE = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
/** Adds CBC, static-RSA and 3DES for clients as old as Windows XP and Java 6. */
const TLS12_OLD = [
  ...TLS12_INTERMEDIATE,
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'DHE-RSA-AES128-SHA256',
  'DHE-RSA-AES256-SHA256',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA256',
  'AES256-SHA256',
  'AES128-SHA',
  'AES256-SHA',
  'DES-CBC3-SHA',
];
const CURVES = ['X25519', 'prime256v1', 'secp384r1'];

const PROFILES: Record<TlsProfileName, { minVersion: TlsVersion; ciphers: string[]; order: boolean }> = {
  modern: { minVersion: 'TLSv1.3', ciphers: TLS13, order: false },
  intermediate: { minVersion: 'TLSv1.2', ciphers: [...TLS13, ...TLS12_INTERMEDIATE], order: false },
  old: { minVersion: 'TLSv1', ciphers: [...TLS13, ...TLS12_OLD], order: true },
};

/**
 * The parameters of a profile, with the listener's own `ciphers`, `ecdhCurves` and `minVersion`
 * in place of the profile's where it sets them.
 */
export function tlsParameters(cfg: {
  profile: TlsProfileName;
  minVersion?: 'TLSv1.2' | 'TLSv1.3' | undefined;
  ciphers?: string[] | undefined;
  ecdhCurves?: string[] | undefined;
}): TlsParameters {
  const p = PROFILES[cfg.profile];
  let ciphers = (cfg.ciphers ?? p.ciphers).join(':');
  // OpenSSL 3 refuses the SHA-1 signatures of TLS 1.0 and 1.1 handshakes above security level 0.
  if (cfg.profile === 'old') ciphers += ':@SECLEVEL=0';
  return {
    minVersion: cfg.minVersion ?? p.minVersion,
    ciphers,
    ecdhCurve: (cfg.ecdhCurves ?? CURVES).join(':'),
    honorCipherOrder: p.order,
  };
}
