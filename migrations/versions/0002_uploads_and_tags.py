"""uploads and tags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:27:16.503560

"""
from alembic import op
import sqlalchemy as sa
import app.models.base  # noqa: F401  (custom column types used by autogenerate)


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('uploads',
    sa.Column('id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('owner_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('storage_key', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=127), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('link_generation', sa.Integer(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_uploads_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_uploads_storage_key'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_content_type'), ['content_type'], unique=False)
        batch_op.create_index('ix_uploads_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_uploads_owner_id_created_at', ['owner_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_visibility'), ['visibility'], unique=False)

    op.create_table('upload_tags',
    sa.Column('upload_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('tag', sa.String(length=50), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_upload_tags_upload_id_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'tag', name=op.f('pk_upload_tags'))
    )
    with op.batch_alter_table('upload_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_tags_tag'), ['tag'], unique=False)




def downgrade():

    with op.batch_alter_table('upload_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_tags_tag'))

    op.drop_table('upload_tags')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_visibility'))
        batch_op.drop_index('ix_uploads_owner_id_created_at')
        batch_op.drop_index('ix_uploads_created_at_id')
        batch_op.drop_index(batch_op.f('ix_uploads_content_type'))

    op.drop_table('uploads')

