"""TAXII 2.1 sink and server: what a participant received, served to its own tools.

`TaxiiStore` is the sink the subscriber delivers STIX objects into;
`create_app` is the read-only TAXII 2.1 server over one participant's store;
`TaxiiUsers` holds the participants' scrypt-hashed passwords.
"""

from __future__ import annotations

from connectors.taxii.app import TAXII_MEDIA_TYPE, PasswordVerifier, TaxiiError, create_app
from connectors.taxii.sink import StixConverter, TaxiiSink
from connectors.taxii.store import (
    CollectionInfo,
    Delivery,
    Incoming,
    ObjectQuery,
    Page,
    Refused,
    StoredObject,
    TaxiiStore,
    collection_id_for,
    store_path,
)
from connectors.taxii.throttle import LoginThrottle
from connectors.taxii.users import USERS_FILE, ScryptCost, TaxiiUsers

__all__ = [
    "TAXII_MEDIA_TYPE",
    "USERS_FILE",
    "CollectionInfo",
    "Delivery",
    "Incoming",
    "LoginThrottle",
    "ObjectQuery",
    "Page",
    "PasswordVerifier",
    "Refused",
    "ScryptCost",
    "StixConverter",
    "StoredObject",
    "TaxiiError",
    "TaxiiSink",
    "TaxiiStore",
    "TaxiiUsers",
    "collection_id_for",
    "create_app",
    "store_path",
]
