"""moto's EC2 server for the sandbox, with one speed fix.

moto (5.x) finds the tags of one resource by scanning the tags of every resource ever tagged
(`TaggedEC2Resource.get_tags` calls `describe_tags` with a resource-id filter), so a
`Describe*` call filtered by tag costs resources x all tags, and the sandbox slows down as a test
run goes on (seconds per DescribeInstances after a few hundred resources). This launcher looks
the tags up by resource id instead: the same answers, in constant time. Run by scripts/sandbox
with moto's virtualenv: python3 moto_server.py -H HOST -p PORT
"""
import sys

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.server import main


def get_tags(self):
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags = self.ec2_backend.tags.get(resource_id, {})
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type}
        for k, v in tags.items()
    ]


TaggedEC2Resource.get_tags = get_tags

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
