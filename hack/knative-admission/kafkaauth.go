package main

// Mode `knative-admission kafka-auth`: the Kafka auth contract of eventing-kafka-broker, judged by its own code.
//
// The Broker's ConfigMap (auth.secret.ref.name), the KafkaSink (spec.auth.secret.ref.name) and the KafkaSource
// read one Secret; its keys are parsed by control-plane/pkg/security (secret.go: protocol, sasl.mechanism, user,
// password, ca.crt; user.crt and user.key for SSL). That Secret is never in git: it is produced on the cluster from
// a declaration (an ExternalSecret). The caller (gitops/validate/checks/kafka_credentials.py) derives the Secret the
// declaration produces, with the literal values it states and null for the values that come from the secret store;
// here each null becomes a well-formed placeholder (a throwaway CA for ca.crt, a PKCS #8 key pair for user.crt and
// user.key, a word otherwise), and upstream's NewSaramaSecurityOptionFromSecret builds a Sarama config from it, as
// the controller does for every Broker, KafkaSink and KafkaSource that names the Secret.
//
// Input (stdin): {"secrets": [{"id": "...", "data": {"<key>": "<literal>" | null, ...}}, ...]}
// Output (stdout): {"secrets": [{"id": "...", "error": "<upstream's error>" | ""}, ...]}

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/IBM/sarama"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/eventing-kafka-broker/control-plane/pkg/security"
)

type kafkaAuthInput struct {
	Secrets []struct {
		ID   string             `json:"id"`
		Data map[string]*string `json:"data"`
	} `json:"secrets"`
}

type kafkaAuthVerdict struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// placeholders are generated once per run: a self-signed CA and a client certificate it signs, both PEM, the
// client key in PKCS #8 (upstream refuses PKCS #1 for SSL: Java clients cannot read it).
type placeholders struct {
	caPEM, certPEM, keyPEM []byte
}

func newPlaceholders() (*placeholders, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "knative-gitops placeholder CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	userKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	userTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "knative-gitops placeholder user"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	userDER, err := x509.CreateCertificate(rand.Reader, userTemplate, caTemplate, &userKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(userKey)
	if err != nil {
		return nil, err
	}
	return &placeholders{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: userDER}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func (p *placeholders) value(key string) []byte {
	switch key {
	case security.CaCertificateKey:
		return p.caPEM
	case security.UserCertificate:
		return p.certPEM
	case security.UserKey:
		return p.keyPEM
	}
	return []byte("placeholder")
}

// judgeKafkaAuth returns upstream's error for a Secret with this data ("" when upstream accepts it).
func judgeKafkaAuth(data map[string]*string, p *placeholders) string {
	secret := &corev1.Secret{Data: map[string][]byte{}}
	for key, literal := range data {
		if literal == nil {
			secret.Data[key] = p.value(key)
		} else {
			secret.Data[key] = []byte(*literal)
		}
	}
	option, err := security.NewSaramaSecurityOptionFromSecret(secret)
	if err == nil {
		err = option(sarama.NewConfig())
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func runKafkaAuth(in io.Reader, out io.Writer) error {
	var req kafkaAuthInput
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("stdin is not {\"secrets\": [...]}: %w", err)
	}
	p, err := newPlaceholders()
	if err != nil {
		return fmt.Errorf("placeholder certificates: %w", err)
	}
	verdicts := make([]kafkaAuthVerdict, 0, len(req.Secrets))
	for _, s := range req.Secrets {
		verdicts = append(verdicts, kafkaAuthVerdict{ID: s.ID, Error: judgeKafkaAuth(s.Data, p)})
	}
	return json.NewEncoder(out).Encode(map[string][]kafkaAuthVerdict{"secrets": verdicts})
}
